import { chmodSync, existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTestHub } from '../test-support/fixtures.js';
import { rawRest } from '../test-support/raw-clients.js';

const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);

/** Everything under the data dir that holds a secret, with the mode it must have. */
function secrets(dataDir: string): Array<[string, string]> {
  const out: Array<[string, string]> = [
    [dataDir, '700'],
    [join(dataDir, 'hub.db'), '600'],
    [join(dataDir, 'tls'), '700'],
    [join(dataDir, 'tls', 'ca-key.pem'), '600'],
    [join(dataDir, 'tls', 'server-key.pem'), '600'],
  ];
  for (const f of ['hub.db-wal', 'hub.db-shm']) if (existsSync(join(dataDir, f))) out.push([join(dataDir, f), '600']);
  return out;
}

describe('files at rest', () => {
  it('creates the database, its WAL files and every key file 0600 in a 0700 data dir, and tightens wider existing ones', async () => {
    // 1. A fresh data dir under a permissive umask-independent parent.
    const dataDir = join(mkdtempSync(join(tmpdir(), 'kedge-files-')), 'data');
    let hub = await startTestHub({ dataDir });
    try {
      expect((await rawRest(hub, 'PUT', '/devices/at-rest-1', '{}')).status).toBe(200);
      expect(existsSync(join(dataDir, 'hub.db-wal'))).toBe(true);
      expect(Object.fromEntries(secrets(dataDir).map(([p]) => [p, mode(p)]))).toEqual(Object.fromEntries(secrets(dataDir)));
    } finally {
      await hub.close();
    }

    // 2. The same files made world-readable (an older release, a restored backup), plus stale WAL files: tightened.
    chmodSync(dataDir, 0o755);
    chmodSync(join(dataDir, 'tls'), 0o755);
    for (const f of ['hub.db', 'tls/ca-key.pem', 'tls/server-key.pem']) chmodSync(join(dataDir, f), 0o644);
    for (const f of ['hub.db-wal', 'hub.db-shm']) {
      if (!existsSync(join(dataDir, f))) writeFileSync(join(dataDir, f), '');
      chmodSync(join(dataDir, f), 0o644);
    }
    hub = await startTestHub({ dataDir, host: hub.host });
    try {
      expect((await rawRest(hub, 'GET', '/devices/at-rest-1')).status).toBe(200);
      expect((await rawRest(hub, 'PUT', '/devices/at-rest-2', '{}')).status).toBe(200);
      expect(Object.fromEntries(secrets(dataDir).map(([p]) => [p, mode(p)]))).toEqual(Object.fromEntries(secrets(dataDir)));
    } finally {
      await hub.close();
    }
  });

  it('makes a database created outside the data dir 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kedge-files-'));
    mkdirSync(join(dir, 'db'), { mode: 0o755 });
    const hub = await startTestHub({ dataDir: join(dir, 'data'), db: `sqlite:${join(dir, 'db', 'elsewhere.db')}` });
    try {
      expect((await rawRest(hub, 'PUT', '/devices/at-rest-3', '{}')).status).toBe(200);
      expect(mode(join(dir, 'db', 'elsewhere.db'))).toBe('600');
      expect(mode(join(dir, 'db', 'elsewhere.db-wal'))).toBe('600');
    } finally {
      await hub.close();
    }
  });
});
