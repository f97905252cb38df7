// The header comments of a route file ml.ink wrote (route.ts renderRoute): which
// cluster, app and spec it belongs to. Plain text, no YAML parser: the waker program on
// each runtime host reads them too (waker/supervisor.ts), and carries no packages.

/** The value of one `# key: value` header line. */
export function routeHeader(text: string, key: string): string | undefined {
  const m = new RegExp(`^# ${key.replace(/\./g, '\\.')}: (\\S+)$`, 'm').exec(text);
  return m?.[1];
}

/** What a route file of `cluster` says it serves (spec hash, and whether it leads to a waker); undefined for anyone else's file. */
export function routeServes(text: string, cluster: string): { specHash: string; wake: boolean } | undefined {
  if (routeHeader(text, 'ink.ml.managed-by') !== 'mlink' || routeHeader(text, 'ink.ml.cluster') !== cluster) return undefined;
  return { specHash: routeHeader(text, 'ink.ml.spec-hash') ?? '', wake: Number(routeHeader(text, 'ink.ml.scale-to-zero')) > 0 };
}
