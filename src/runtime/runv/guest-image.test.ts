import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AGENT_ENTRY, agentModules } from './guest-image.js';

describe('guest agent bundle', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atoll-agent-modules-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function tree(files: Record<string, string>): string {
    const root = mkdtempSync(join(dir, 'src-'));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return root;
  }

  it('collects the entry and every relative module it imports, transitively, and no built-in', async () => {
    const root = tree({
      'a/entry.js': "import { x } from './x.js';\nimport {\n  y,\n  z,\n} from '../b/y.js';\nimport 'node:fs';\nexport { w } from './w.js';\n// import { nope } from './commented.js'\n",
      'a/x.js': "import { readFile } from 'node:fs/promises';\nexport const x = 1;\n",
      'a/w.js': 'export const w = 1;\n',
      'b/y.js': "import { x } from '../a/x.js';\nexport const y = 1, z = 2;\n",
    });
    assert.deepEqual(await agentModules(root, 'a/entry.js'), ['a/entry.js', 'a/w.js', 'a/x.js', 'b/y.js']);
  });

  it('refuses a package import and a module outside the tree, naming the importer', async () => {
    await assert.rejects(agentModules(tree({ 'e.js': "import WebSocket from 'ws';\n" }), 'e.js'), /e\.js imports 'ws', which the agent disk does not carry/);
    await assert.rejects(agentModules(tree({ 'e.js': "import { a } from '../outside.js';\n" }), 'e.js'), /imports '\.\.\/outside\.js', outside/);
    await assert.rejects(agentModules(tree({ 'e.js': "import { a } from './missing.js';\n" }), 'e.js'), /missing\.js is not built/);
  });

  it("bundles the real agent with the runc handler it drives, and nothing from node_modules", async () => {
    const modules = await agentModules();
    assert.ok(modules.includes(AGENT_ENTRY));
    assert.ok(modules.includes('runtime/runc/handler.js'));
    assert.ok(modules.includes('runtime/runv/agent-protocol.js'));
    assert.ok(modules.every((module) => module.endsWith('.js') && !module.includes('node_modules')));
  });
});
