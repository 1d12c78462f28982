import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatIpv4, HostLocalIpam, IpamExhaustedError, parseCidr, parseIpv4 } from './ipam.js';

describe('host-local IPAM', () => {
  let tmp: string;
  let n = 0;
  const statePath = () => join(tmp, `s${n++}`, 'ipam.json');

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'atoll-ipam-'));
  });

  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('parses and formats IPv4 addresses and CIDRs', () => {
    assert.equal(parseIpv4('10.88.1.2'), 0x0a580102);
    assert.equal(formatIpv4(0xffffffff), '255.255.255.255');
    assert.deepEqual(parseCidr('10.88.0.0/16'), { network: 0x0a580000, prefixLength: 16, size: 65536 });
    assert.throws(() => parseIpv4('10.88.1'), /invalid IPv4 address/);
    assert.throws(() => parseIpv4('10.088.1.1'), /invalid IPv4 address/);
    assert.throws(() => parseIpv4('10.256.1.1'), /invalid IPv4 address/);
    assert.throws(() => parseCidr('10.88.0.5/16'), /host bits set; did you mean 10\.88\.0\.0\/16\?/);
    assert.throws(() => parseCidr('10.88.0.0/33'), /prefix over 32/);
  });

  it('validates the range', async () => {
    await assert.rejects(HostLocalIpam.open(statePath(), { subnet: '10.0.0.0/31' }), /too small/);
    await assert.rejects(HostLocalIpam.open(statePath(), { subnet: '10.0.0.0/24', gateway: '10.0.1.1' }), /gateway 10\.0\.1\.1 is not a host address/);
    await assert.rejects(HostLocalIpam.open(statePath(), { subnet: '10.0.0.0/24', rangeStart: '10.0.0.255' }), /rangeStart/);
    await assert.rejects(
      HostLocalIpam.open(statePath(), { subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.8' }),
      /is after rangeEnd/,
    );
  });

  it('skips network, gateway and broadcast, and is idempotent per sandbox', async () => {
    const ipam = await HostLocalIpam.open(statePath(), { subnet: '10.0.0.0/29' });
    assert.equal(ipam.gateway, '10.0.0.1');
    const got = [];
    for (const id of ['a', 'b', 'c', 'd', 'e']) got.push((await ipam.allocate(id)).address);
    assert.deepEqual(got, ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    assert.deepEqual(await ipam.allocate('c'), { sandboxId: 'c', address: '10.0.0.4', prefixLength: 29, gateway: '10.0.0.1' });
    await assert.rejects(ipam.allocate('f'), IpamExhaustedError);
    await assert.rejects(ipam.allocate('f'), /no free pod address in 10\.0\.0\.0\/29/);
  });

  it('hands out released addresses round-robin, never one still held', async () => {
    const ipam = await HostLocalIpam.open(statePath(), { subnet: '10.0.0.0/29' });
    for (const id of ['a', 'b', 'c']) await ipam.allocate(id);
    assert.equal((await ipam.release('a'))?.address, '10.0.0.2');
    assert.equal(await ipam.release('a'), undefined);
    assert.equal((await ipam.allocate('d')).address, '10.0.0.5', 'a released address is not reused at once');
    assert.equal((await ipam.allocate('e')).address, '10.0.0.6');
    assert.equal((await ipam.allocate('f')).address, '10.0.0.2', 'wraps around to the freed address');
    const held = ipam.list().map((a) => a.address);
    assert.equal(new Set(held).size, held.length);
  });

  it('honours rangeStart, rangeEnd and a gateway inside the range', async () => {
    const ipam = await HostLocalIpam.open(statePath(), {
      subnet: '10.0.0.0/24', gateway: '10.0.0.11', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.12',
    });
    assert.equal((await ipam.allocate('a')).address, '10.0.0.10');
    assert.equal((await ipam.allocate('b')).address, '10.0.0.12');
    await assert.rejects(ipam.allocate('c'), IpamExhaustedError);
  });

  it('gives unique addresses to concurrent allocations and persists them all', async () => {
    const path = statePath();
    const ipam = await HostLocalIpam.open(path, { subnet: '10.0.0.0/24' });
    const got = await Promise.all(Array.from({ length: 100 }, (_, i) => ipam.allocate(`s${i}`)));
    assert.equal(new Set(got.map((a) => a.address)).size, 100);
    assert.deepEqual((await HostLocalIpam.open(path, { subnet: '10.0.0.0/24' })).list(), ipam.list());
  });

  it('fails only the allocation that finds the pool exhausted among concurrent ones', async () => {
    const ipam = await HostLocalIpam.open(statePath(), { subnet: '10.0.0.0/29' });
    const results = await Promise.allSettled(['a', 'b', 'c', 'd', 'e', 'f'].map((id) => ipam.allocate(id)));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    assert.equal(ipam.list().length, 5);
  });

  it('persists allocations: a reopened instance keeps them and reconciles with live sandboxes', async () => {
    const path = statePath();
    const first = await HostLocalIpam.open(path, { subnet: '10.0.0.0/24' });
    for (const id of ['live1', 'gone', 'live2']) await first.allocate(id);

    const second = await HostLocalIpam.open(path, { subnet: '10.0.0.0/24' });
    assert.deepEqual(second.list(), first.list());
    assert.deepEqual(await second.reconcile(new Set(['live1', 'live2', 'unknown'])), ['gone']);
    assert.equal((await second.allocate('new')).address, '10.0.0.5', 'continues after the last reserved address');

    const third = await HostLocalIpam.open(path, { subnet: '10.0.0.0/24' });
    assert.deepEqual(third.list().map((a) => a.sandboxId).sort(), ['live1', 'live2', 'new']);
    assert.deepEqual((await readdir(join(path, '..'))).sort(), ['ipam.json'], 'no temp files left');
  });

  it('refuses a subnet change while addresses are held, accepts it when empty', async () => {
    const path = statePath();
    const ipam = await HostLocalIpam.open(path, { subnet: '10.0.0.0/24' });
    await ipam.allocate('a');
    await assert.rejects(HostLocalIpam.open(path, { subnet: '10.1.0.0/24' }), /holds 1 addresses in 10\.0\.0\.0\/24.*now 10\.1\.0\.0\/24/);
    await ipam.release('a');
    const moved = await HostLocalIpam.open(path, { subnet: '10.1.0.0/24' });
    assert.equal((await moved.allocate('b')).address, '10.1.0.2');
  });

  it('rejects a corrupt state file with its path', async () => {
    const path = statePath();
    await HostLocalIpam.open(path, { subnet: '10.0.0.0/24' }).then((i) => i.allocate('a'));
    const good = await readFile(path, 'utf8');
    const cases: [string, RegExp][] = [
      ['{not json', /is corrupt/],
      [JSON.stringify({ version: 2, subnet: '10.0.0.0/24', allocations: {} }), /unsupported version 2/],
      [JSON.stringify({ version: 1, subnet: '10.0.0.0/24', allocations: { '10.0.0.2': 'a', '10.0.0.3': 'a' } }), /sandbox a holds two addresses/],
      [JSON.stringify({ version: 1, subnet: '10.0.0.0/24', allocations: { '10.0.0.255': 'a' } }), /10\.0\.0\.255 is not a host address/],
      [JSON.stringify({ version: 1, subnet: '10.0.0.0/24', allocations: { '10.0.0.2': 7 } }), /has no sandbox id/],
    ];
    for (const [text, error] of cases) {
      await writeFile(path, text);
      await assert.rejects(HostLocalIpam.open(path, { subnet: '10.0.0.0/24' }), (err: Error) => {
        assert.match(err.message, error);
        assert.ok(err.message.includes(path) || /invalid IPv4/.test(err.message), err.message);
        return true;
      });
    }
    await writeFile(path, good);
    assert.equal((await HostLocalIpam.open(path, { subnet: '10.0.0.0/24' })).lookup('a')?.address, '10.0.0.2');
  });

  it('leaves memory unchanged when the state cannot be written', async () => {
    const path = statePath();
    const ipam = await HostLocalIpam.open(path, { subnet: '10.0.0.0/24' });
    await ipam.allocate('a');
    await rm(join(path, '..'), { recursive: true });
    await assert.rejects(ipam.allocate('b'));
    assert.deepEqual(ipam.list().map((a) => a.sandboxId), ['a']);
    await assert.rejects(ipam.release('a'));
    assert.equal(ipam.lookup('a')?.address, '10.0.0.2');
  });
});
