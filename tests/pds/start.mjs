// A Bluesky PDS and a PLC directory on loopback, for the tests: `node tests/pds/start.mjs [--rate-limits] [--appview]`.
// Prints one line `PDS_READY {"url": ...}` when both answer, and runs until stdin closes or SIGTERM.
// @atproto/dev-env is installed by scripts/system-deps outside the checkout (PRESSROOM_PDS_DIR).
import { createRequire } from 'node:module'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

// The same folder scripts/system-deps installs into: /var/cache for root, ~/.cache otherwise.
const home =
  process.env.PRESSROOM_PDS_DIR ||
  (process.getuid() === 0
    ? '/var/cache/pressroom-pds'
    : path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'pressroom-pds'))
const require = createRequire(path.join(home, 'package.json'))

// dev-env listens on every interface; the tests may only use loopback.
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1')
  return listen.apply(this, args)
}

const { TestNetwork, TestNetworkNoAppView } = require('@atproto/dev-env')
const rateLimits = process.argv.includes('--rate-limits')
const pds = { rateLimitsEnabled: rateLimits, hostname: 'localhost' }
// --appview adds Bluesky's AppView (likes, reposts, replies counted from the PDS's firehose): it keeps its
// index in PostgreSQL (PRESSROOM_APPVIEW_DB, schema PRESSROOM_APPVIEW_SCHEMA) and needs Redis (REDIS_HOST).
const appview = process.argv.includes('--appview')
const network = appview
  ? await TestNetwork.create({
      pds,
      dbPostgresUrl: process.env.PRESSROOM_APPVIEW_DB,
      dbPostgresSchema: process.env.PRESSROOM_APPVIEW_SCHEMA,
    })
  : await TestNetworkNoAppView.create({ pds })
const url = `http://127.0.0.1:${network.pds.port}`
console.log('PDS_READY ' + JSON.stringify({ url, plc: network.plc.url, rateLimits, appview }))

let closing = false
async function close() {
  if (closing) return
  closing = true
  await network.close().catch(() => {})
  process.exit(0)
}
process.on('SIGTERM', close)
process.on('SIGINT', close)
process.stdin.on('end', close)
process.stdin.resume()
