// Apps that keep rows in a database, as an agent would write them: plain Node.js servers
// using a real client library (vendored, see vendor.ts). Each answers GET /healthz with
// a query (so it is healthy only when its database answers), POST /items with a body to
// store it, and GET /items with what is stored, as a JSON array of strings.
import { tarOf, vendored } from './vendor.js';

const POSTGRES = `
const http = require('http');
const { Client } = require('pg');
async function q(sql, args) {
  const c = new Client({ connectionString: process.env.DATABASE_URL });
  await c.connect();
  try { return await c.query(sql, args); } finally { await c.end(); }
}
const ready = process.env.DATABASE_URL ? q('CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, body text NOT NULL)').catch((e) => console.error(e.message)) : Promise.resolve();
`;

const MYSQL = `
const http = require('http');
const mysql = require('mysql2/promise');
async function q(sql, args) {
  const c = await mysql.createConnection(process.env.DATABASE_URL);
  try { const [rows] = await c.query(sql, args); return { rows }; } finally { await c.end(); }
}
const ready = process.env.DATABASE_URL ? q('CREATE TABLE IF NOT EXISTS items (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT NOT NULL)').catch((e) => console.error(e.message)) : Promise.resolve();
`;

const REDIS = `
const http = require('http');
const { createClient } = require('redis');
const client = createClient({ url: process.env.REDIS_URL });
client.on('error', () => undefined);
const ready = process.env.REDIS_URL ? client.connect().catch((e) => console.error(e.message)) : Promise.resolve();
async function q(sql, args) {
  if (sql.startsWith('SELECT 1')) { await client.ping(); return { rows: [] }; }
  if (sql.startsWith('INSERT')) { await client.rPush('items', args[0]); return { rows: [] }; }
  if (sql.startsWith('DELETE')) { await client.del('items'); return { rows: [] }; }
  return { rows: (await client.lRange('items', 0, -1)).map((body) => ({ body })) };
}
`;

const SERVER = `
http.createServer(async (req, res) => {
  try {
    await ready;
    if (req.url === '/healthz') { await q('SELECT 1'); res.end('ok'); return; }
    if (req.url === '/items' && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      await q('INSERT INTO items (body) VALUES (?)'.replace('?', process.env.DATABASE_URL && process.env.DATABASE_URL.startsWith('postgres') ? '$1' : '?'), [body]);
      res.statusCode = 201;
      res.end('stored');
      return;
    }
    if (req.url === '/items' && req.method === 'DELETE') { await q('DELETE FROM items'); res.end('deleted'); return; }
    if (req.url === '/items') {
      const r = await q('SELECT body FROM items ORDER BY id');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(r.rows.map((x) => x.body)));
      return;
    }
    res.end(process.env.GREETING || 'hello');
  } catch (e) {
    res.statusCode = 500;
    res.end('error: ' + (e && e.message));
  }
}).listen(Number(process.env.PORT || 8080));
`;

export type AppEngine = 'postgres' | 'mysql' | 'redis';

const CODE: Record<AppEngine, { head: string; lib: string }> = {
  postgres: { head: POSTGRES, lib: 'pg' },
  mysql: { head: MYSQL, lib: 'mysql2' },
  redis: { head: REDIS, lib: 'redis' },
};

/** create_app's `source` for an app that stores items in a database of `engine`. */
export async function dbAppSource(engine: AppEngine): Promise<{ tar: string }> {
  const files = {
    'package.json': JSON.stringify({ name: `items-${engine}`, version: '1.0.0', main: 'server.js', scripts: { start: 'node server.js' } }, null, 2),
    'server.js': `${CODE[engine].head}${SERVER}`,
    ...vendored([CODE[engine].lib]),
  };
  return { tar: await tarOf(files) };
}
