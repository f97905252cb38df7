// Pure TLS pieces: when a certificate is due for renewal, and the Traefik config an app's
// host names get (compared whole, as the file provider reads it).
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { acmeChallengeConfig, edgeTlsConfig, renderDynamicYaml, validateAllowCidrs } from '../../reconciler/edge/tls-config.js';
import { validateDnsNames } from '../../reconciler/tls/ca.js';
import { needsRenewal } from '../../reconciler/tls/cert-info.js';

const day = 86_400_000;
const t0 = new Date('2027-01-01T00:00:00Z');
const cert = { notBefore: t0, notAfter: new Date(t0.getTime() + 30 * day), dnsNames: ['web.internal.test'] };

describe('needsRenewal', () => {
  it('keeps a certificate until 2/3 of its lifetime (day 20 of 30), then renews it', () => {
    const due = new Date(t0.getTime() + 20 * day);
    expect(needsRenewal(cert, new Date(t0.getTime() + day))).toEqual({ renew: false, renewAt: due, reason: `valid until ${cert.notAfter.toISOString()}; renewal due ${due.toISOString()}` });
    expect(needsRenewal(cert, new Date(due.getTime() - 1000)).renew).toBe(false);
    expect(needsRenewal(cert, due)).toEqual({ renew: true, renewAt: due, reason: `past 2/3 of its lifetime (due ${due.toISOString()}, expires ${cert.notAfter.toISOString()})` });
  });

  it('renews an expired or not-yet-valid certificate, and one that misses a wanted name', () => {
    expect(needsRenewal(cert, new Date(t0.getTime() + 31 * day)).reason).toMatch(/^expired at/);
    expect(needsRenewal(cert, new Date(t0.getTime() - day)).reason).toMatch(/^not valid before/);
    expect(needsRenewal(cert, new Date(t0.getTime() + day), ['web.internal.test', 'WWW.internal.test.'])).toMatchObject({ renew: true, reason: 'does not cover www.internal.test' });
    expect(needsRenewal(cert, new Date(t0.getTime() + day), ['Web.internal.test.']).renew).toBe(false);
  });
});

describe('host names and allow-lists', () => {
  it('refuses what is not a host name or an IP network, naming the field', () => {
    expect(validateDnsNames(['Web.Internal.Test.'])).toEqual(['web.internal.test']);
    expect(() => validateDnsNames([])).toThrow(/dnsNames: give at least one/);
    expect(() => validateDnsNames(['ok.test', 'bad_name.test'])).toThrow(/dnsNames\[1\]: "bad_name.test" is not a DNS host name/);
    expect(() => validateDnsNames(['a.*.test'])).toThrow(/wildcard only as the first label/);
    expect(validateAllowCidrs(['10.0.0.0/8', '127.0.0.1', '2001:db8::/32'])).toEqual(['10.0.0.0/8', '127.0.0.1', '2001:db8::/32']);
    expect(() => validateAllowCidrs([])).toThrow(/allow_cidrs: empty, so no client could reach the app/);
    expect(() => validateAllowCidrs(['10.0.0.0/8', '10.0.0.0/33'])).toThrow(/allow_cidrs\[1\]: "10.0.0.0\/33" is not an IP network/);
    expect(() => validateAllowCidrs(['intranet'])).toThrow(/allow_cidrs\[0\]/);
  });
});

describe('edgeTlsConfig', () => {
  const spec = {
    router: 'mlink-default-web', service: 'mlink-default-web', hosts: ['web.internal.test', 'www.internal.test'],
    allowCidrs: ['10.0.0.0/8'], redirectToHttps: true, httpsPort: 18443,
    certificate: { certPem: '-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n', keyPem: '-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n' },
  };
  const rule = 'Host(`web.internal.test`) || Host(`www.internal.test`)';

  it('puts HTTPS on websecure and redirects web to it, both behind the allow-list', () => {
    expect(edgeTlsConfig(spec)).toEqual({
      http: {
        routers: {
          'mlink-default-web-secure': { rule, service: 'mlink-default-web', entryPoints: ['websecure'], middlewares: ['mlink-default-web-allow'], tls: {} },
          'mlink-default-web-http': { rule, service: 'mlink-default-web', entryPoints: ['web'], middlewares: ['mlink-default-web-allow', 'mlink-default-web-https'] },
        },
        middlewares: {
          'mlink-default-web-allow': { ipAllowList: { sourceRange: ['10.0.0.0/8'] } },
          'mlink-default-web-https': { redirectScheme: { scheme: 'https', permanent: true, port: '18443' } },
        },
      },
      tls: { certificates: [{ certFile: spec.certificate.certPem, keyFile: spec.certificate.keyPem }] },
    });
  });

  it('serves web directly when the app opts out, and leaves the port out of the redirect on 443', () => {
    const out = edgeTlsConfig({ ...spec, redirectToHttps: false, certificate: undefined });
    expect(out.http.routers['mlink-default-web-http']).toEqual({ rule, service: 'mlink-default-web', entryPoints: ['web'], middlewares: ['mlink-default-web-allow'] });
    expect(out.http.middlewares).toEqual({ 'mlink-default-web-allow': { ipAllowList: { sourceRange: ['10.0.0.0/8'] } } });
    expect(out.tls).toBeUndefined();
    expect(edgeTlsConfig({ ...spec, httpsPort: 443 }).http.middlewares!['mlink-default-web-https']).toEqual({ redirectScheme: { scheme: 'https', permanent: true } });
  });

  it('renders YAML that reads back as the same config, PEMs as block text', () => {
    const yaml = renderDynamicYaml(edgeTlsConfig(spec));
    expect(parse(yaml)).toEqual(edgeTlsConfig(spec));
    expect(yaml).toContain('certFile: |\n        -----BEGIN CERTIFICATE-----\n        AAA\n');
  });

  it('routes ACME challenges ahead of every app router, with no allow-list or redirect', () => {
    expect(acmeChallengeConfig({ router: 'mlink-acme', responderUrl: 'http://127.0.0.1:7333' })).toEqual({
      http: {
        routers: { 'mlink-acme': { rule: 'PathPrefix(`/.well-known/acme-challenge/`)', service: 'mlink-acme', entryPoints: ['web'], priority: 1_000_000 } },
        services: { 'mlink-acme': { loadBalancer: { servers: [{ url: 'http://127.0.0.1:7333' }] } } },
      },
    });
  });
});
