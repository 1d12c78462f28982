import { X509Certificate, createPublicKey, verify, type KeyObject } from 'node:crypto';

/**
 * PKCS#10 certificate requests (RFC 2986), as a `CertificateSigningRequest`'s `spec.request` carries
 * them: parsed and their self-signature checked synchronously, so the API server can validate a CSR on
 * write and the certificate controllers can judge one without a child process. Only what Kubernetes
 * reads is kept: the subject's common name and organizations, and the subject-alternative names of
 * the requested extensions.
 */
export interface CertificateRequest {
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  /** IPv4 dotted; IPv6 as eight lower-case hex groups without leading zeros (pki.ts's canonical form). */
  ipAddresses: string[];
  emailAddresses: string[];
  uris: string[];
  publicKey: KeyObject;
}

export class CertificateRequestError extends Error {
  override readonly name = 'CertificateRequestError';
}

const OID_COMMON_NAME = '2.5.4.3';
const OID_ORGANIZATION = '2.5.4.10';
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

/** Signature algorithms Go's x509 accepts for a CSR, mapped to node's digest name (null: Ed25519). */
const SIGNATURE_DIGESTS: Record<string, string | null> = {
  '1.2.840.10045.4.3.2': 'sha256', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.3.101.112': null, // Ed25519
};

const TAG = {
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  sequence: 0x30,
  set: 0x31,
  attributes: 0xa0,
  sanEmail: 0x81,
  sanDns: 0x82,
  sanUri: 0x86,
  sanIp: 0x87,
} as const;

interface Tlv {
  tag: number;
  /** The whole element, header included (what a signature covers). */
  raw: Buffer;
  body: Buffer;
}

function fail(message: string): never {
  throw new CertificateRequestError(message);
}

/** The DER elements of `buf`, in order; every byte must belong to one. */
function elements(buf: Buffer, what: string): Tlv[] {
  const out: Tlv[] = [];
  let at = 0;
  while (at < buf.length) {
    const start = at;
    const tag = buf[at++]!;
    if ((tag & 0x1f) === 0x1f) fail(`${what}: high-tag-number DER elements are not supported`);
    if (at >= buf.length) fail(`${what}: truncated DER element`);
    let len = buf[at++]!;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4) fail(`${what}: unsupported DER length encoding`);
      if (at + n > buf.length) fail(`${what}: truncated DER length`);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[at++]!;
    }
    if (at + len > buf.length) fail(`${what}: DER element runs past its container`);
    out.push({ tag, raw: buf.subarray(start, at + len), body: buf.subarray(at, at + len) });
    at += len;
  }
  return out;
}

function one(buf: Buffer, tag: number, what: string): Tlv {
  const els = elements(buf, what);
  if (els.length !== 1 || els[0]!.tag !== tag) fail(`${what}: malformed DER`);
  return els[0]!;
}

function expect(el: Tlv | undefined, tag: number, what: string): Tlv {
  if (!el || el.tag !== tag) fail(`${what}: malformed DER`);
  return el;
}

function oid(body: Buffer): string {
  if (body.length === 0) fail('empty object identifier');
  const arcs: number[] = [];
  let value = 0;
  for (const byte of body) {
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  if (body[body.length - 1]! & 0x80) fail('truncated object identifier');
  const first = arcs.shift()!;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}

function directoryString(el: Tlv): string {
  switch (el.tag) {
    case 0x0c: // UTF8String
      return el.body.toString('utf8');
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x14: // T61String, read as Latin-1 the way Go does
      return el.body.toString('latin1');
    case 0x1e: // BMPString: UCS-2 big-endian
      return Buffer.from(el.body).swap16().toString('utf16le');
    default:
      return fail(`unsupported string type 0x${el.tag.toString(16)} in the subject`);
  }
}

function parseSubject(name: Tlv, into: { commonName: string; organizations: string[] }): void {
  for (const rdn of elements(name.body, 'subject')) {
    expect(rdn, TAG.set, 'subject');
    for (const atv of elements(rdn.body, 'subject')) {
      const [type, value] = elements(expect(atv, TAG.sequence, 'subject').body, 'subject');
      const id = oid(expect(type, TAG.oid, 'subject').body);
      if (!value) fail('subject: attribute without a value');
      if (id === OID_COMMON_NAME) into.commonName = directoryString(value);
      else if (id === OID_ORGANIZATION) into.organizations.push(directoryString(value));
    }
  }
}

function ipText(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  if (bytes.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
    return groups.join(':');
  }
  return fail(`subjectAltName: an IP address has ${bytes.length} bytes; expected 4 or 16`);
}

type AltNames = Pick<CertificateRequest, 'dnsNames' | 'ipAddresses' | 'emailAddresses' | 'uris'>;

function parseSubjectAltName(value: Buffer, into: AltNames): void {
  const names = one(value, TAG.sequence, 'subjectAltName');
  for (const gn of elements(names.body, 'subjectAltName')) {
    switch (gn.tag) {
      case TAG.sanEmail:
        into.emailAddresses.push(gn.body.toString('latin1'));
        break;
      case TAG.sanDns:
        into.dnsNames.push(gn.body.toString('latin1'));
        break;
      case TAG.sanUri:
        into.uris.push(gn.body.toString('latin1'));
        break;
      case TAG.sanIp:
        into.ipAddresses.push(ipText(gn.body));
        break;
      default:
        // otherName, directoryName and the rest: Kubernetes' signers never read them.
        break;
    }
  }
}

function parseAttributes(attrs: Tlv, into: AltNames): void {
  for (const attr of elements(attrs.body, 'attributes')) {
    const [type, values] = elements(expect(attr, TAG.sequence, 'attributes').body, 'attributes');
    if (oid(expect(type, TAG.oid, 'attributes').body) !== OID_EXTENSION_REQUEST) continue;
    for (const exts of elements(expect(values, TAG.set, 'extensionRequest').body, 'extensionRequest')) {
      for (const ext of elements(expect(exts, TAG.sequence, 'extensionRequest').body, 'extensionRequest')) {
        const parts = elements(expect(ext, TAG.sequence, 'extension').body, 'extension');
        const id = oid(expect(parts[0], TAG.oid, 'extension').body);
        const value = expect(parts[parts.length - 1], TAG.octetString, 'extension');
        if (id === OID_SUBJECT_ALT_NAME) parseSubjectAltName(value.body, into);
      }
    }
  }
}

/** The DER bytes of the one PEM block of `type` in `pem`; anything else is an error. */
export function pemBlock(pem: string, type: string): Buffer {
  const blocks = pemBlocks(pem);
  if (blocks.length !== 1) fail(`expected exactly one PEM block, found ${blocks.length}`);
  const block = blocks[0]!;
  if (block.type !== type) fail(`PEM block type must be ${type}, found ${block.type}`);
  return block.der;
}

/** Every PEM block of `text`, with its type. Blocks with headers (RFC 1421) are refused. */
export function pemBlocks(text: string): { type: string; der: Buffer }[] {
  const out: { type: string; der: Buffer }[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const body = m[2]!;
    if (body.includes(':')) fail(`PEM block ${m[1]} has headers, which are not permitted`);
    const b64 = body.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) fail(`PEM block ${m[1]} is not valid base64`);
    out.push({ type: m[1]!, der: Buffer.from(b64, 'base64') });
  }
  return out;
}

/**
 * Parses a PEM `CERTIFICATE REQUEST` and verifies its self-signature (which proves the requester
 * holds the private key). Throws CertificateRequestError naming what is wrong.
 */
export function parseCertificateRequest(pem: string): CertificateRequest {
  const der = pemBlock(pem, 'CERTIFICATE REQUEST');
  const outer = one(der, TAG.sequence, 'certificate request');
  const [info, algorithm, signature] = elements(outer.body, 'certificate request');
  expect(info, TAG.sequence, 'certificationRequestInfo');
  expect(algorithm, TAG.sequence, 'signatureAlgorithm');
  expect(signature, TAG.bitString, 'signature');
  const [version, subject, spki, attributes] = elements(info!.body, 'certificationRequestInfo');
  const v = expect(version, TAG.integer, 'version').body;
  if (v.length !== 1 || v[0] !== 0) fail('unsupported certificate request version (only v1 exists)');
  const names = { commonName: '', organizations: [] as string[] };
  parseSubject(expect(subject, TAG.sequence, 'subject'), names);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: expect(spki, TAG.sequence, 'subjectPublicKeyInfo').raw, format: 'der', type: 'spki' });
  } catch (err) {
    if (err instanceof CertificateRequestError) throw err;
    fail(`unsupported or malformed public key: ${(err as Error).message}`);
  }
  const out: CertificateRequest = { ...names, dnsNames: [], ipAddresses: [], emailAddresses: [], uris: [], publicKey };
  if (attributes) parseAttributes(expect(attributes, TAG.attributes, 'attributes'), out);

  const algOid = oid(expect(elements(algorithm!.body, 'signatureAlgorithm')[0], TAG.oid, 'signatureAlgorithm').body);
  const digest = SIGNATURE_DIGESTS[algOid];
  if (digest === undefined) fail(`unsupported signature algorithm ${algOid}`);
  const sig = signature!.body;
  if (sig.length < 1 || sig[0] !== 0) fail('signature: malformed BIT STRING');
  let valid = false;
  try {
    valid = verify(digest, info!.raw, out.publicKey, sig.subarray(1));
  } catch {
    valid = false;
  }
  if (!valid) fail('the request signature does not verify with its public key');
  return out;
}

/**
 * Checks `text` is one or more PEM `CERTIFICATE` blocks that parse as X.509, as kube validates
 * `status.certificate`. Returns the reason it is not, or undefined.
 */
export function certificateChainProblem(text: string): string | undefined {
  try {
    const blocks = pemBlocks(text);
    if (blocks.length === 0) return 'must contain at least one CERTIFICATE PEM block';
    for (const b of blocks) {
      if (b.type !== 'CERTIFICATE') return `only CERTIFICATE PEM blocks are allowed, found ${JSON.stringify(b.type)}`;
      new X509Certificate(b.der);
    }
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
