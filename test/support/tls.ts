// Certificates for tests, made with openssl: a throwaway CA and a server certificate
// it signed for the given IP addresses and names, as an operator's own CA would issue.
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { must } from '../../infra/proc.js';

export interface TestCertificate { ca: string; cert: string; key: string }

export async function makeCertificate(dir: string, sans: { ips?: string[]; dns?: string[] }): Promise<TestCertificate> {
  const f = (n: string): string => join(dir, n);
  await must('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=mlink test CA', '-keyout', f('ca.key'), '-out', f('ca.pem')]);
  await must('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=mlink test endpoint', '-keyout', f('server.key'), '-out', f('server.csr')]);
  const alt = [...(sans.ips ?? []).map((ip) => `IP:${ip}`), ...(sans.dns ?? []).map((d) => `DNS:${d}`)].join(',');
  writeFileSync(f('ext.cnf'), `subjectAltName=${alt}\nextendedKeyUsage=serverAuth\n`);
  await must('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f('server.pem')]);
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}
