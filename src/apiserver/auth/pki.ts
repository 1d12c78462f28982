import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPair, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomic } from './atomic-file.js';

/**
 * The API server's key material, kept in one directory:
 *
 *   ca.crt / ca.key             the cluster CA; signs serving and client certificates and node CSRs
 *   apiserver.crt / .key        the HTTPS serving certificate
 *   sa.key / sa.pub             the service-account token signing pair (EC P-256, for ES256 JWTs)
 *   apiserver-kubelet-client.crt / .key
 *                               the client certificate the API server presents to node servers (logs,
 *                               exec, port-forward, stats), as kube-apiserver's --kubelet-client-certificate
 *
 * `ensurePki` is idempotent: it creates what is missing, keeps a valid CA forever (rotating it would
 * invalidate every issued credential), and reissues the serving certificate whenever its SAN set, key,
 * issuer or remaining lifetime no longer fit (the kubelet client certificate likewise). Keys are 0600, certificates 0644, all written with
 * write-then-rename. One process owns the directory; concurrent `ensurePki` calls on it are not guarded.
 */
export interface Pki {
  dir: string;
  caCertPath: string;
  caKeyPath: string;
  servingCertPath: string;
  servingKeyPath: string;
  saKeyPath: string;
  saPubPath: string;
  kubeletClientCertPath: string;
  kubeletClientKeyPath: string;
  caCertPem: string;
  servingCertPem: string;
  servingKeyPem: string;
  saPrivateKeyPem: string;
  saPublicKeyPem: string;
  /** The API server's identity towards node servers: KUBELET_CLIENT_CN in KUBELET_CLIENT_GROUPS. */
  kubeletClientCertPem: string;
  kubeletClientKeyPem: string;
  /** The serving certificate's SANs: DNS names, then IP addresses in canonical form. */
  servingHosts: string[];
}

export interface IssuedCert {
  certPem: string;
  keyPem: string;
}

/** Kubernetes `certificates.k8s.io` KeyUsage strings accepted by `signCsr`. */
export type KeyUsage =
  | 'signing'
  | 'digital signature'
  | 'content commitment'
  | 'key encipherment'
  | 'key agreement'
  | 'data encipherment'
  | 'any'
  | 'server auth'
  | 'client auth'
  | 'code signing'
  | 'email protection'
  | 's/mime'
  | 'ipsec end system'
  | 'ipsec tunnel'
  | 'ipsec user'
  | 'timestamping'
  | 'ocsp signing';

export interface SignOptions {
  cn: string;
  groups: string[];
  days: number;
  usages: KeyUsage[];
  /** SANs for serving certificates (e.g. a node's kubelet-serving CSR). */
  hosts?: string[];
}

export const CA_VALIDITY_DAYS = 3650;
export const SERVING_VALIDITY_DAYS = 365;
export const CLIENT_VALIDITY_DAYS = 365;
/** A serving certificate with less life than this left is reissued at startup. */
export const SERVING_RENEW_BEFORE_DAYS = 30;
const OPENSSL_TIMEOUT_MS = 30_000;
const DAY_MS = 86_400_000;

/** The subject of the API server's client certificate towards node servers, as kubeadm names it. */
export const KUBELET_CLIENT_CN = 'kube-apiserver-kubelet-client';
export const KUBELET_CLIENT_GROUPS = ['system:masters'];

const CA_SUBJECT_CN = 'atoll-ca';
const SERVING_SUBJECT_CN = 'atoll-apiserver';
/** Names in-cluster clients use for the API server, as kube-apiserver's certificate carries them. */
const SERVICE_DNS_NAMES = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];

const KEY_USAGE_EXT: Record<string, string> = {
  signing: 'digitalSignature',
  'digital signature': 'digitalSignature',
  'content commitment': 'nonRepudiation',
  'key encipherment': 'keyEncipherment',
  'key agreement': 'keyAgreement',
  'data encipherment': 'dataEncipherment',
};
const EXT_KEY_USAGE_EXT: Record<string, string> = {
  any: 'anyExtendedKeyUsage',
  'server auth': 'serverAuth',
  'client auth': 'clientAuth',
  'code signing': 'codeSigning',
  'email protection': 'emailProtection',
  's/mime': 'emailProtection',
  'ipsec end system': 'ipsecEndSystem',
  'ipsec tunnel': 'ipsecTunnel',
  'ipsec user': 'ipsecUser',
  timestamping: 'timeStamping',
  'ocsp signing': 'OCSPSigning',
};

const execFileAsync = promisify(execFile);

async function openssl(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('openssl', args, { timeout: OPENSSL_TIMEOUT_MS, maxBuffer: 1 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'atoll-pki-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A fresh EC P-256 key pair: PKCS#8 private key and SPKI public key, PEM. */
export async function newEcKey(): Promise<{ keyPem: string; pubPem: string }> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('ec', { namedCurve: 'prime256v1' });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    pubPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** A positive 127-bit serial, as RFC 5280 wants serials unpredictable and non-negative. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return '0x' + bytes.toString('hex');
}

/** Subject and group names become X.509 attributes; keep them to printable ASCII that -subj can carry. */
function checkNamePart(what: string, value: string): void {
  if (value === '' || !/^[\x20-\x7e]+$/.test(value)) {
    throw new Error(`${what} ${JSON.stringify(value)} must be non-empty printable ASCII`);
  }
}

function subjectArg(cn: string, groups: string[]): string {
  const esc = (v: string) => v.replace(/[\\/+=]/g, (c) => '\\' + c);
  return groups.map((g) => `/O=${esc(g)}`).join('') + `/CN=${esc(cn)}`;
}

const DNS_NAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function expandIPv6(ip: string): string {
  let addr = ip.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(addr);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    addr = addr.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16).toString(16)).join(':');
}

/** Canonical text for a SAN entry, so sets read back from a certificate compare equal to requested ones. */
export function canonicalHost(host: string): string {
  const h = host.trim();
  const family = isIP(h);
  if (family === 4) return h;
  if (family === 6) return expandIPv6(h);
  const name = h.toLowerCase().replace(/\.$/, '');
  if (name.length > 253 || !DNS_NAME.test(name)) {
    throw new Error(`host ${JSON.stringify(host)} is neither an IP address nor a valid DNS name`);
  }
  return name;
}

function isLinkLocalV6(canonical: string): boolean {
  return /^fe[89ab][0-9a-f]:/.test(canonical);
}

/** The SANs the serving certificate must carry: loopback, this host's names and addresses, and `extra`. */
export function servingHosts(extra: string[]): string[] {
  const set = new Set<string>(['localhost', '127.0.0.1', expandIPv6('::1'), ...SERVICE_DNS_NAMES]);
  try {
    set.add(canonicalHost(hostname()));
  } catch {
    // A hostname that is not a valid DNS name cannot appear in a SAN; clients use an address instead.
  }
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      const c = canonicalHost(a.address);
      // Link-local addresses need a zone id to dial, which certificate verification cannot match.
      if (!isLinkLocalV6(c)) set.add(c);
    }
  }
  for (const h of extra) set.add(canonicalHost(h));
  return sortHosts([...set]);
}

function sortHosts(hosts: string[]): string[] {
  const dns = hosts.filter((h) => isIP(h) === 0).sort();
  const ips = hosts.filter((h) => isIP(h) !== 0).sort();
  return [...dns, ...ips];
}

/** SANs of a certificate in canonical form, parsed from Node's `subjectAltName` text. */
export function certificateHosts(cert: X509Certificate): string[] {
  const text = cert.subjectAltName ?? '';
  const out: string[] = [];
  for (const entry of text.split(', ')) {
    if (entry.startsWith('DNS:')) out.push(entry.slice(4).toLowerCase());
    else if (entry.startsWith('IP Address:')) out.push(canonicalHost(entry.slice(11)));
  }
  return sortHosts(out);
}

interface LeafSpec {
  subject: string;
  pubPem: string;
  days: number;
  keyUsage: string[];
  extKeyUsage: string[];
  hosts: string[];
}

async function signLeaf(caCertPath: string, caKeyPath: string, spec: LeafSpec): Promise<string> {
  return withTempDir(async (tmp) => {
    const ext = ['[v3]', 'basicConstraints = critical,CA:FALSE', 'authorityKeyIdentifier = keyid', 'subjectKeyIdentifier = hash'];
    if (spec.keyUsage.length) ext.push(`keyUsage = critical,${spec.keyUsage.join(',')}`);
    if (spec.extKeyUsage.length) ext.push(`extendedKeyUsage = ${spec.extKeyUsage.join(',')}`);
    if (spec.hosts.length) {
      ext.push('subjectAltName = @alt', '[alt]');
      let dns = 0;
      let ip = 0;
      for (const h of spec.hosts) ext.push(isIP(h) ? `IP.${++ip} = ${h}` : `DNS.${++dns} = ${h}`);
    }
    await writeFile(join(tmp, 'ext.cnf'), ext.join('\n') + '\n');
    await writeFile(join(tmp, 'pub.pem'), spec.pubPem);
    // `x509 -new -force_pubkey` sets the subject we chose; `x509 -req` would keep the requester's.
    return openssl([
      'x509', '-new', '-force_pubkey', join(tmp, 'pub.pem'), '-subj', spec.subject,
      '-CA', caCertPath, '-CAkey', caKeyPath, '-set_serial', randomSerial(), '-days', String(spec.days),
      '-sha256', '-extfile', join(tmp, 'ext.cnf'), '-extensions', 'v3',
    ]);
  });
}

/** A file's text, or undefined when it does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function ensureCa(caCertPath: string, caKeyPath: string): Promise<string> {
  const [certPem, keyPem] = await Promise.all([readIfExists(caCertPath), readIfExists(caKeyPath)]);
  if (certPem !== undefined) {
    if (keyPem === undefined) throw new Error(`${caCertPath} exists but ${caKeyPath} is missing; restore the CA key or move ca.crt aside to create a new CA`);
    const cert = new X509Certificate(certPem);
    if (!cert.ca || !cert.checkPrivateKey(createPrivateKey(keyPem))) {
      throw new Error(`${caCertPath} is not a CA certificate matching ${caKeyPath}; move both aside to create a new CA`);
    }
    return certPem;
  }
  // The key is written before the certificate, so a key without a certificate is an interrupted creation.
  const key = await newEcKey();
  await writeFileAtomic(caKeyPath, key.keyPem, 0o600);
  const created = await withTempDir(async (tmp) => {
    const cnf = join(tmp, 'ca.cnf');
    await writeFile(
      cnf,
      [
        '[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', `CN = ${CA_SUBJECT_CN}`,
        '[v3_ca]', 'basicConstraints = critical,CA:TRUE', 'keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign',
        'subjectKeyIdentifier = hash', '',
      ].join('\n'),
    );
    return openssl([
      'req', '-x509', '-new', '-config', cnf, '-extensions', 'v3_ca', '-key', caKeyPath,
      '-subj', `/CN=${CA_SUBJECT_CN}`, '-set_serial', randomSerial(), '-days', String(CA_VALIDITY_DAYS), '-sha256',
    ]);
  });
  await writeFileAtomic(caCertPath, created, 0o644);
  return created;
}

/** Whether a stored leaf still fits: its key, issued by `ca`, with life left; `check` adds more. */
function leafFits(certPem: string, keyPem: string, ca: X509Certificate, check: (cert: X509Certificate) => boolean): boolean {
  try {
    const cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return false;
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
    if (Date.parse(cert.validTo) - Date.now() < SERVING_RENEW_BEFORE_DAYS * DAY_MS) return false;
    return check(cert);
  } catch {
    return false;
  }
}

function servingCertFits(certPem: string, keyPem: string, ca: X509Certificate, hosts: string[]): boolean {
  return leafFits(certPem, keyPem, ca, (cert) => {
    const have = certificateHosts(cert);
    return have.length === hosts.length && have.every((h, i) => h === hosts[i]);
  });
}

/** The subject a client certificate of `cn` in `groups` carries, in Node's `X509Certificate.subject` form. */
function clientSubject(cn: string, groups: string[]): string {
  return [...groups.map((g) => `O=${g}`), `CN=${cn}`].join('\n');
}

export async function ensurePki(dir: string, opts: { hosts: string[] }): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const paths = {
    caCertPath: join(dir, 'ca.crt'),
    caKeyPath: join(dir, 'ca.key'),
    servingCertPath: join(dir, 'apiserver.crt'),
    servingKeyPath: join(dir, 'apiserver.key'),
    saKeyPath: join(dir, 'sa.key'),
    saPubPath: join(dir, 'sa.pub'),
    kubeletClientCertPath: join(dir, 'apiserver-kubelet-client.crt'),
    kubeletClientKeyPath: join(dir, 'apiserver-kubelet-client.key'),
  };
  const hosts = servingHosts(opts.hosts);
  const caCertPem = await ensureCa(paths.caCertPath, paths.caKeyPath);
  const ca = new X509Certificate(caCertPem);

  let servingCertPem = await readIfExists(paths.servingCertPath);
  let servingKeyPem = await readIfExists(paths.servingKeyPath);
  if (servingCertPem === undefined || servingKeyPem === undefined || !servingCertFits(servingCertPem, servingKeyPem, ca, hosts)) {
    const key = await newEcKey();
    servingCertPem = await signLeaf(paths.caCertPath, paths.caKeyPath, {
      subject: subjectArg(SERVING_SUBJECT_CN, []),
      pubPem: key.pubPem,
      days: SERVING_VALIDITY_DAYS,
      keyUsage: ['digitalSignature', 'keyEncipherment'],
      extKeyUsage: ['serverAuth'],
      hosts,
    });
    servingKeyPem = key.keyPem;
    await writeFileAtomic(paths.servingKeyPath, servingKeyPem, 0o600);
    await writeFileAtomic(paths.servingCertPath, servingCertPem, 0o644);
  }

  let saPrivateKeyPem = await readIfExists(paths.saKeyPath);
  if (saPrivateKeyPem === undefined) {
    saPrivateKeyPem = (await newEcKey()).keyPem;
    await writeFileAtomic(paths.saKeyPath, saPrivateKeyPem, 0o600);
  }
  const saPublicKeyPem = createPublicKey(createPrivateKey(saPrivateKeyPem)).export({ type: 'spki', format: 'pem' }).toString();
  if ((await readIfExists(paths.saPubPath)) !== saPublicKeyPem) await writeFileAtomic(paths.saPubPath, saPublicKeyPem, 0o644);

  let kubeletClientCertPem = await readIfExists(paths.kubeletClientCertPath);
  let kubeletClientKeyPem = await readIfExists(paths.kubeletClientKeyPath);
  const subject = clientSubject(KUBELET_CLIENT_CN, KUBELET_CLIENT_GROUPS);
  if (
    kubeletClientCertPem === undefined ||
    kubeletClientKeyPem === undefined ||
    !leafFits(kubeletClientCertPem, kubeletClientKeyPem, ca, (cert) => cert.subject === subject)
  ) {
    const issued = await issueLeafClientCert(paths.caCertPath, paths.caKeyPath, KUBELET_CLIENT_CN, KUBELET_CLIENT_GROUPS, CLIENT_VALIDITY_DAYS);
    kubeletClientCertPem = issued.certPem;
    kubeletClientKeyPem = issued.keyPem;
    await writeFileAtomic(paths.kubeletClientKeyPath, kubeletClientKeyPem, 0o600);
    await writeFileAtomic(paths.kubeletClientCertPath, kubeletClientCertPem, 0o644);
  }

  return {
    dir,
    ...paths,
    caCertPem,
    servingCertPem,
    servingKeyPem,
    saPrivateKeyPem,
    saPublicKeyPem,
    kubeletClientCertPem,
    kubeletClientKeyPem,
    servingHosts: hosts,
  };
}

function checkDays(days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > CA_VALIDITY_DAYS) {
    throw new Error(`days must be an integer from 1 to ${CA_VALIDITY_DAYS}, got ${days}`);
  }
}

/** A client certificate for `cn` in `groups`, the identity the x509 authenticator reads back. */
export async function issueClientCert(pki: Pki, opts: { cn: string; groups: string[]; days?: number }): Promise<IssuedCert> {
  const days = opts.days ?? CLIENT_VALIDITY_DAYS;
  checkDays(days);
  checkNamePart('user name', opts.cn);
  for (const g of opts.groups) checkNamePart('group', g);
  return issueLeafClientCert(pki.caCertPath, pki.caKeyPath, opts.cn, opts.groups, days);
}

async function issueLeafClientCert(caCertPath: string, caKeyPath: string, cn: string, groups: string[], days: number): Promise<IssuedCert> {
  const key = await newEcKey();
  const certPem = await signLeaf(caCertPath, caKeyPath, {
    subject: subjectArg(cn, groups),
    pubPem: key.pubPem,
    days,
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extKeyUsage: ['clientAuth'],
    hosts: [],
  });
  return { certPem, keyPem: key.keyPem };
}

/** A serving certificate for `hosts` (DNS names or IPs), e.g. a node server's, signed by the cluster CA. */
export async function issueServingCert(pki: Pki, opts: { cn: string; hosts: string[]; days?: number }): Promise<IssuedCert> {
  const days = opts.days ?? SERVING_VALIDITY_DAYS;
  checkDays(days);
  checkNamePart('common name', opts.cn);
  if (opts.hosts.length === 0) throw new Error('a serving certificate needs at least one host');
  const key = await newEcKey();
  const certPem = await signLeaf(pki.caCertPath, pki.caKeyPath, {
    subject: subjectArg(opts.cn, []),
    pubPem: key.pubPem,
    days,
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extKeyUsage: ['serverAuth'],
    hosts: sortHosts(opts.hosts.map(canonicalHost)),
  });
  return { certPem, keyPem: key.keyPem };
}

/**
 * Signs a PKCS#10 request with the cluster CA. The request's self-signature is verified (it proves the
 * requester holds the key) but its subject and extensions are ignored: the certificate carries
 * `opts.cn`/`opts.groups` and `opts.usages`. Deciding whether the requester may have that identity is
 * the caller's job.
 */
export async function signCsr(pki: Pick<Pki, 'caCertPath' | 'caKeyPath'>, csrPem: string, opts: SignOptions): Promise<string> {
  checkDays(opts.days);
  checkNamePart('user name', opts.cn);
  for (const g of opts.groups) checkNamePart('group', g);
  if (!/^-----BEGIN (NEW )?CERTIFICATE REQUEST-----/.test(csrPem.trim())) {
    throw new Error('CSR must be a PEM "CERTIFICATE REQUEST" block');
  }
  if (opts.usages.length === 0) throw new Error('at least one key usage is required');
  const keyUsage = new Set<string>();
  const extKeyUsage = new Set<string>();
  for (const u of opts.usages) {
    const ku = KEY_USAGE_EXT[u];
    const eku = EXT_KEY_USAGE_EXT[u];
    if (ku) keyUsage.add(ku);
    else if (eku) extKeyUsage.add(eku);
    else throw new Error(`unsupported key usage ${JSON.stringify(u)}`);
  }
  const hosts = (opts.hosts ?? []).map(canonicalHost);
  const pubPem = await withTempDir(async (tmp) => {
    const csrPath = join(tmp, 'req.csr');
    await writeFile(csrPath, csrPem);
    return openssl(['req', '-in', csrPath, '-noout', '-verify', '-pubkey']);
  });
  return signLeaf(pki.caCertPath, pki.caKeyPath, {
    subject: subjectArg(opts.cn, opts.groups),
    pubPem,
    days: opts.days,
    keyUsage: [...keyUsage],
    extKeyUsage: [...extKeyUsage],
    hosts,
  });
}

/**
 * A PKCS#10 request for `keyPem` with subject `/O=<group>.../CN=<cn>` and, when `hosts` is given, a
 * subjectAltName extension of those DNS names and IP addresses: what a node sends to get its client
 * or serving certificate signed.
 */
export async function createCertificateRequest(keyPem: string, opts: { cn: string; groups: string[]; hosts?: string[] }): Promise<string> {
  checkNamePart('user name', opts.cn);
  for (const g of opts.groups) checkNamePart('group', g);
  const hosts = (opts.hosts ?? []).map(canonicalHost);
  return withTempDir(async (tmp) => {
    const keyPath = join(tmp, 'req.key');
    await writeFile(keyPath, keyPem, { mode: 0o600 });
    const args = ['req', '-new', '-key', keyPath, '-subj', subjectArg(opts.cn, opts.groups), '-sha256'];
    if (hosts.length) args.push('-addext', `subjectAltName=${hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',')}`);
    return openssl(args);
  });
}
