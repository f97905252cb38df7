// edge TLS: the Traefik dynamic-config pieces that put an app's host names on HTTPS.
// Pure: the routers, middlewares and certificate for one app, as data and as YAML for the
// file provider. Certificates go inline (Traefik's certFile/keyFile take PEM content as
// well as paths), so one file per app carries everything and appears or goes atomically.
import { isIP } from 'node:net';
import { stringify } from 'yaml';

export interface InlineCertificate { certPem: string; keyPem: string }

export interface EdgeTlsSpec {
  /** Base router name (route.ts's `router`); the pieces are named after it. */
  router: string;
  /** The service the routers send to (route.ts's load balancer of the app). */
  service: string;
  hosts: string[];
  /** Clients allowed in: CIDRs or single addresses, IPv4 or IPv6. Others get 403. */
  allowCidrs: string[];
  /** false: plain HTTP serves the app too (the app opted out of the redirect). */
  redirectToHttps: boolean;
  /** The HTTPS port clients use, for the redirect's Location (omitted when 443). */
  httpsPort?: number;
  /** Inline certificate for the hosts; omitted when another file or a resolver provides it. */
  certificate?: InlineCertificate;
  entryPoints?: { web: string; websecure: string };
}

interface Router { rule: string; service: string; entryPoints: string[]; middlewares?: string[]; tls?: Record<string, never>; priority?: number }
type Middleware = { ipAllowList: { sourceRange: string[] } } | { redirectScheme: { scheme: 'https'; permanent: boolean; port?: string } };

export interface TraefikDynamic {
  http: { routers: Record<string, Router>; middlewares?: Record<string, Middleware>; services?: Record<string, unknown> };
  tls?: { certificates: Array<{ certFile: string; keyFile: string }> };
}

export const DEFAULT_ENTRYPOINTS = { web: 'web', websecure: 'websecure' } as const;

/** Checks an allow-list; throws naming the field and the fix. Returns it unchanged. */
export function validateAllowCidrs(cidrs: string[], field = 'allow_cidrs'): string[] {
  if (cidrs.length === 0) {
    throw new Error(`${field}: empty, so no client could reach the app; list the client networks (for example 10.0.0.0/8) or 0.0.0.0/0 and ::/0 for everyone`);
  }
  cidrs.forEach((c, i) => {
    const [addr, bits, extra] = c.split('/');
    const family = isIP(addr ?? '');
    const max = family === 4 ? 32 : 128;
    const okBits = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max);
    if (family === 0 || !okBits || extra !== undefined) {
      throw new Error(`${field}[${i}]: "${c}" is not an IP network; write an address with an optional prefix length, such as 192.168.0.0/16 or 2001:db8::/32`);
    }
  });
  return cidrs;
}

function hostRule(hosts: string[]): string {
  if (hosts.length === 0) throw new Error('hosts: an app needs at least one host name for its routes');
  return hosts.map((h) => `Host(\`${h}\`)`).join(' || ');
}

/** The routers and middlewares of one app: HTTPS on websecure, and HTTP that redirects (or serves, when opted out). */
export function edgeTlsConfig(spec: EdgeTlsSpec): TraefikDynamic {
  const ep = spec.entryPoints ?? DEFAULT_ENTRYPOINTS;
  const rule = hostRule(spec.hosts);
  const allow = `${spec.router}-allow`;
  const redirect = `${spec.router}-https`;
  const middlewares: Record<string, Middleware> = { [allow]: { ipAllowList: { sourceRange: validateAllowCidrs(spec.allowCidrs) } } };
  const routers: Record<string, Router> = {
    [`${spec.router}-secure`]: { rule, service: spec.service, entryPoints: [ep.websecure], middlewares: [allow], tls: {} },
  };
  if (spec.redirectToHttps) {
    const port = spec.httpsPort !== undefined && spec.httpsPort !== 443 ? { port: String(spec.httpsPort) } : {};
    middlewares[redirect] = { redirectScheme: { scheme: 'https', permanent: true, ...port } };
    // The allow-list runs first, so clients outside it get 403 on HTTP too, not a redirect.
    routers[`${spec.router}-http`] = { rule, service: spec.service, entryPoints: [ep.web], middlewares: [allow, redirect] };
  } else {
    routers[`${spec.router}-http`] = { rule, service: spec.service, entryPoints: [ep.web], middlewares: [allow] };
  }
  const out: TraefikDynamic = { http: { routers, middlewares } };
  if (spec.certificate) out.tls = { certificates: [{ certFile: spec.certificate.certPem, keyFile: spec.certificate.keyPem }] };
  return out;
}

/** Above any rule-length priority an app router gets, below Traefik's internal routers. */
export const ACME_CHALLENGE_PRIORITY = 1_000_000;

/**
 * A router that sends every `/.well-known/acme-challenge/` request on `web` to ml.ink's
 * HTTP-01 responder, ahead of the apps' redirects and allow-lists (the ACME server is
 * rarely inside an app's allow-list, and must not be redirected to a certificate it has
 * not issued yet).
 */
export function acmeChallengeConfig(opts: { router: string; responderUrl: string; entryPoint?: string; hosts?: string[] }): TraefikDynamic {
  const path = 'PathPrefix(`/.well-known/acme-challenge/`)';
  const rule = opts.hosts && opts.hosts.length > 0 ? `(${hostRule(opts.hosts)}) && ${path}` : path;
  return {
    http: {
      routers: { [opts.router]: { rule, service: opts.router, entryPoints: [opts.entryPoint ?? DEFAULT_ENTRYPOINTS.web], priority: ACME_CHALLENGE_PRIORITY } },
      services: { [opts.router]: { loadBalancer: { servers: [{ url: opts.responderUrl }] } } },
    },
  };
}

/** One file-provider YAML document of `parts` merged (routers and middlewares by name, certificates appended). */
export function renderDynamicYaml(...parts: TraefikDynamic[]): string {
  const merged: TraefikDynamic = { http: { routers: {} } };
  for (const p of parts) {
    Object.assign(merged.http.routers, p.http.routers);
    if (p.http.middlewares) merged.http.middlewares = { ...merged.http.middlewares, ...p.http.middlewares };
    if (p.http.services) merged.http.services = { ...merged.http.services, ...p.http.services };
    if (p.tls) merged.tls = { certificates: [...(merged.tls?.certificates ?? []), ...p.tls.certificates] };
  }
  return stringify(merged, { lineWidth: 0 });
}
