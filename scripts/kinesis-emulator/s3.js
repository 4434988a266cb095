// Starts s3rver (an S3-protocol server, pinned in package.json) on a
// loopback port with its objects under a directory, creating the buckets
// named after the directory, and prints "listening <port>" once it accepts
// connections. Usage: node s3.js PORT DIR [BUCKET ...]; port 0 lets the
// kernel choose.
'use strict'
const S3rver = require('s3rver')

const [portArg, directory, ...buckets] = process.argv.slice(2)
if (!directory) {
  console.error('usage: node s3.js PORT DIR [BUCKET ...]')
  process.exit(2)
}
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(portArg || 0),
  directory,
  silent: true,
  // Clients sign with any credentials (the tests' are dummies).
  allowMismatchedSignatures: true,
  vhostBuckets: false,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
})
server.run((err, addr) => {
  if (err) {
    console.error(`s3 emulator: cannot listen on 127.0.0.1:${portArg}: ${err.message}`)
    process.exit(2)
  }
  console.log(`listening ${addr.port}`)
})
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)))
}
