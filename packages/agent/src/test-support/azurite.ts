import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { BlobServiceClient, ContainerSASPermissions, SASProtocol, StorageSharedKeyCredential, generateBlobSASQueryParameters } from '@azure/storage-blob';

/** Azurite's well-known development account (public, documented by Microsoft; not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** A running Azurite blob service (Microsoft's Azure Storage emulator) on loopback. */
export interface Azurite {
  readonly endpoint: string;
  /** Microsoft's own Blob SDK, authenticated with the account key: to create containers and read what was uploaded. */
  readonly service: BlobServiceClient;
  /** A container SAS URL, as IoT Hub users pass to UploadModuleLogs (`cw` by default). */
  sasUrl(container: string, o?: { key?: string; permissions?: string }): string;
  /** Every blob of a container with its bytes and properties. */
  blobs(container: string): Promise<Map<string, { body: Buffer; contentType?: string; contentEncoding?: string }>>;
  stop(): void;
}

/**
 * Starts Azurite's blob service on 127.0.0.1 and an ephemeral port, in memory, without telemetry. `--loose`: the
 * old @azure/storage-blob that azure-iot-device pins sends headers Azurite's strict mode refuses on downloads.
 */
export async function startAzurite(): Promise<Azurite> {
  const main = createRequire(import.meta.url).resolve('azurite/dist/src/blob/main.js');
  const child = spawn(
    process.execPath,
    [main, '--blobHost', '127.0.0.1', '--blobPort', '0', '--inMemoryPersistence', '--extentMemoryLimit', '64', '--disableTelemetry', '--skipApiVersionCheck', '--loose'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Azurite did not start: ${out}`)), 30_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /listens on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`Azurite exited (${String(code)}): ${out}`)));
  });
  const service = new BlobServiceClient(`${endpoint}/${AZURITE_ACCOUNT}`, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
  return {
    endpoint,
    service,
    sasUrl(container, o = {}) {
      const sas = generateBlobSASQueryParameters(
        { containerName: container, permissions: ContainerSASPermissions.parse(o.permissions ?? 'cw'), expiresOn: new Date(Date.now() + 3600_000), protocol: SASProtocol.HttpsAndHttp },
        new StorageSharedKeyCredential(AZURITE_ACCOUNT, o.key ?? AZURITE_KEY),
      );
      return `${endpoint}/${AZURITE_ACCOUNT}/${container}?${sas.toString()}`;
    },
    async blobs(container) {
      const c = service.getContainerClient(container);
      const found = new Map<string, { body: Buffer; contentType?: string; contentEncoding?: string }>();
      for await (const b of c.listBlobsFlat()) {
        const body = await c.getBlobClient(b.name).downloadToBuffer();
        found.set(b.name, { body, ...(b.properties.contentType ? { contentType: b.properties.contentType } : {}), ...(b.properties.contentEncoding ? { contentEncoding: b.properties.contentEncoding } : {}) });
      }
      return found;
    },
    stop: () => void child.kill(),
  };
}
