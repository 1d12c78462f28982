import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_ROOT } from '../runtime/node-runtime.js';
import { DEFAULT_DISK_SLOTS } from '../runtime/runv/disk-slots.js';
import { ensureGuestImages } from '../runtime/runv/guest-image.js';
import { ensureGuestKernel } from '../runtime/runv/guest-kernel.js';
import { SHARE_TAG } from '../runtime/runv/pod-vm.js';
import { MAX_TEMPLATE_MEMORY_MIB, MIN_TEMPLATE_MEMORY_MIB, TemplateCache } from '../runtime/runv/template.js';
import { DEFAULT_MEMORY_MIB, chooseAccelerator } from '../runtime/runv/vm.js';
import { Progress } from '../up/progress.js';
import { UsageError } from './config.js';

/** How often a terminal's live line shows the step's elapsed time anew. */
const TICK_MS = 1_000;

/** `atoll runtime template build`: the runv handler's VM template, built by hand with progress. */
export function registerRuntimeTemplateCommand(runtime: Command): void {
  runtime
    .command('template')
    .description('VM templates of the runv handler: a runv pod starts by restoring one instead of booting a VM.')
    .command('build')
    .description(
      'Build the runv VM template for pods of --memory MiB under --root, as `atoll runtime` would use it (a NIC, a share, the default disk slots); ' +
        'nothing is done when a current one exists. The guest kernel and images are prepared first if missing.',
    )
    .option('--root <dir>', 'the runtime\'s persistent state, as `atoll runtime --root`', DEFAULT_ROOT)
    .option('--memory <mib>', `the template's guest memory in MiB, ${MIN_TEMPLATE_MEMORY_MIB} to ${MAX_TEMPLATE_MEMORY_MIB}; the default is what a pod without a memory limit gets`, String(DEFAULT_MEMORY_MIB))
    .action(async (flags: { root: string; memory: string }) => {
      const memoryMiB = parseMemory(flags.memory);
      const root = resolve(flags.root);
      await mkdir(join(root, 'runv'), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
        throw new UsageError(`--root ${flags.root}: cannot create ${join(root, 'runv')} (${err.code ?? err.message}); run as root or choose a writable directory`);
      });
      const stop = new AbortController();
      const interrupt = () => stop.abort();
      process.once('SIGINT', interrupt);
      process.once('SIGTERM', interrupt);
      const progress = new TimedProgress();
      const templates = new TemplateCache(root, { log: (line) => progress.line(line) });
      try {
        const options = { signal: stop.signal, onProgress: (step: string) => progress.step(step) };
        progress.step('preparing the guest kernel');
        const kernel = await ensureGuestKernel(root, options);
        progress.step('preparing the initramfs and the agent disk');
        const images = await ensureGuestImages(root, kernel, options);
        progress.step('choosing the accelerator');
        const accel = await chooseAccelerator(root, kernel, images, stop.signal);
        progress.line(`atoll runtime template: accelerator ${accel.accel} (${accel.reason})`);
        const { template, built } = await templates.ensure(
          { kernel, images, accel: accel.accel, memoryMiB, diskSlots: DEFAULT_DISK_SLOTS, nic: true, shareTag: SHARE_TAG },
          options,
        );
        progress.clear();
        console.log(built
          ? `atoll runtime template: template ${template.key} (${memoryMiB} MiB, ${accel.accel}) built in ${(template.buildMs / 1000).toFixed(1)} s: ${template.dir}`
          : `atoll runtime template: template ${template.key} (${memoryMiB} MiB, ${accel.accel}) is up to date (built ${template.builtAt}): ${template.dir}`);
      } catch (err) {
        if (stop.signal.aborted) throw new UsageError('interrupted: no template was kept from this build');
        throw err;
      } finally {
        progress.clear();
        process.off('SIGINT', interrupt);
        process.off('SIGTERM', interrupt);
        await templates.close();
      }
    });
}

function parseMemory(value: string): number {
  const mib = Number(value);
  if (!/^\d+$/.test(value) || mib < MIN_TEMPLATE_MEMORY_MIB || mib > MAX_TEMPLATE_MEMORY_MIB) {
    throw new UsageError(`--memory ${value}: give a whole number of MiB from ${MIN_TEMPLATE_MEMORY_MIB} to ${MAX_TEMPLATE_MEMORY_MIB}, such as ${DEFAULT_MEMORY_MIB}`);
  }
  return mib;
}

/** Progress whose live step shows its elapsed seconds on a terminal; plain lines otherwise. */
class TimedProgress {
  private readonly progress = new Progress(process.stdout, 'atoll runtime template: ');
  private timer: NodeJS.Timeout | undefined;

  step(text: string): void {
    clearInterval(this.timer);
    this.progress.step(text);
    if (!process.stdout.isTTY) return;
    const began = Date.now();
    this.timer = setInterval(() => this.progress.step(`${text} (${Math.round((Date.now() - began) / 1000)} s)`), TICK_MS);
  }

  line(text: string): void {
    this.progress.line(text);
  }

  clear(): void {
    clearInterval(this.timer);
    this.progress.clear();
  }
}
