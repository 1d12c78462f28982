/**
 * The floor for any local API proxy: a bare forwarder from a unix socket to the API server over a
 * keep-alive TLS connection with client certificates, piping requests and answers and doing nothing
 * else. bench/edgehub runs it beside EdgeHub so that what a proxy hop costs on this machine can be
 * told apart from what EdgeHub's own work (request parsing, caching) adds.
 *
 *   node dist/bench/edgehub/forwarder.js SOCKET UPSTREAM CA_FILE CERT_FILE KEY_FILE
 *
 * Prints `forwarding` once it listens; SIGINT or SIGTERM closes it.
 */
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const [socket, upstream, caFile, certFile, keyFile] = process.argv.slice(2);
if (!socket || !upstream || !caFile || !certFile || !keyFile) {
  console.error('usage: forwarder.js SOCKET UPSTREAM CA_FILE CERT_FILE KEY_FILE');
  process.exit(2);
}
const target = new URL(upstream);
const agent = new https.Agent({ keepAlive: true, ca: readFileSync(caFile), cert: readFileSync(certFile), key: readFileSync(keyFile) });
rmSync(socket, { force: true });
const server = http.createServer((req, res) => {
  const headers = { ...req.headers };
  delete headers.host;
  delete headers.connection;
  const out = https.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  out.on('error', () => res.destroy());
  req.pipe(out);
});
server.listen(socket, () => console.log('forwarding'));
const stop = () => {
  agent.destroy();
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
