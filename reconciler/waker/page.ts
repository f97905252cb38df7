// The waiting page a browser gets while its app wakes: the app's name, and a refresh
// that asks again until the app answers itself. Pure.

const escape = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function waitingPage(app: string, refreshSeconds: number): string {
  const name = escape(app);
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="refresh" content="${refreshSeconds}">`,
    `<title>${name} is starting</title>`,
    '<style>body{font-family:system-ui,sans-serif;display:grid;place-items:center;min-height:90vh;color:#333}</style>',
    '</head><body><main>',
    `<h1>${name} is starting</h1>`,
    `<p>It was asleep after a quiet spell. This page reloads every ${refreshSeconds} s until ${name} answers.</p>`,
    '</main></body></html>',
    '',
  ].join('\n');
}

/** A browser (it asks for HTML first) gets the page; anything else is held until the app answers. */
export function wantsPage(accept: string | undefined): boolean {
  return /\btext\/html\b/i.test(accept ?? '');
}
