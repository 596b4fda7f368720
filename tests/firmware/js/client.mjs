// tuf-js client with the TUF client-test interface, plus a bearer header for Gridfleet targets.
//
//   node client.mjs --metadata-dir DIR init ROOT_FILE
//   node client.mjs --metadata-dir DIR --metadata-url URL refresh
//   node client.mjs --metadata-dir DIR --metadata-url URL --target-name P --target-base-url URL
//        --target-dir DIR download
//
// Exit 0 on success, 1 on failure (the reason on stderr). GRIDFLEET_BEARER in the environment is
// sent as "Authorization: Bearer ..." on every request.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { BaseFetcher, Updater } from 'tuf-js';
// Not re-exported by the package index; the updater needs this class to tell "no newer root" (404).
import { DownloadHTTPError } from 'tuf-js/dist/error.js';

class BearerFetcher extends BaseFetcher {
  async fetch(url) {
    const headers = {};
    if (process.env.GRIDFLEET_BEARER) headers.Authorization = `Bearer ${process.env.GRIDFLEET_BEARER}`;
    const response = await fetch(url, { headers });
    if (!response.ok || !response.body) {
      throw new DownloadHTTPError(`HTTP ${response.status} for ${url}`, response.status);
    }
    return Readable.fromWeb(response.body);
  }
}

const { values, positionals } = parseArgs({
  options: {
    'metadata-dir': { type: 'string' },
    'metadata-url': { type: 'string' },
    'target-name': { type: 'string', multiple: true },
    'target-base-url': { type: 'string' },
    'target-dir': { type: 'string' },
  },
  allowPositionals: true,
});

function updater() {
  return new Updater({
    metadataDir: values['metadata-dir'],
    metadataBaseUrl: values['metadata-url'],
    targetDir: values['target-dir'],
    targetBaseUrl: values['target-base-url'],
    fetcher: new BearerFetcher(),
  });
}

async function main() {
  const [command, arg] = positionals;
  if (command === 'init') {
    mkdirSync(values['metadata-dir'], { recursive: true });
    copyFileSync(arg, join(values['metadata-dir'], 'root.json'));
  } else if (command === 'refresh') {
    await updater().refresh();
  } else if (command === 'download') {
    const client = updater();
    await client.refresh();
    mkdirSync(values['target-dir'], { recursive: true });
    for (const name of values['target-name'] ?? []) {
      const info = await client.getTargetInfo(name);
      if (!info) throw new Error(`target ${name} not found`);
      // Saved under the target path with "/" replaced, so tests can read it back.
      await client.downloadTarget(info, join(values['target-dir'], name.replaceAll('/', '%2F')));
    }
  } else {
    throw new Error(`unknown command ${command}`);
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`${error.name}: ${error.message}`);
    process.exit(1);
  },
);
