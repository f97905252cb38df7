// A search of workflow histories (or any value) for a secret, in plain text, base64 or
// hex, inside strings and inside payload bytes decoded as text. Pure.

/** The forms a value can take in a history: as it is, base64 (the CLI's JSON), hex. */
function forms(secret: string): string[] {
  const b = Buffer.from(secret, 'utf8');
  return [secret, b.toString('base64'), b.toString('base64').replace(/=+$/, ''), b.toString('hex')];
}

/**
 * Where `secret` occurs in a history (or any value): the paths to every string, and to
 * every byte array decoded as text, that hold it in one of its forms. Pure.
 */
export function findSecret(value: unknown, secret: string, path = '$'): string[] {
  const wanted = forms(secret);
  const hit = (text: string): boolean => wanted.some((w) => text.includes(w));
  if (typeof value === 'string') {
    // a base64 string (payload bytes in the CLI's JSON) is searched decoded too: the
    // secret's own base64 matches inside a longer one only at every third byte
    const decoded = value.length >= 8 && value.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(value) ? Buffer.from(value, 'base64').toString('utf8') : '';
    return hit(value) || (decoded !== '' && hit(decoded)) ? [path] : [];
  }
  if (value instanceof Uint8Array) {
    const text = Buffer.from(value).toString('utf8');
    return hit(text) || hit(Buffer.from(value).toString('latin1')) ? [path] : [];
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => findSecret(v, secret, `${path}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => findSecret(v, secret, `${path}.${k}`));
  }
  return [];
}
