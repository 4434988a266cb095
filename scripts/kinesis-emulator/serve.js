// Starts kinesalite (pinned in package.json) on a loopback port and prints
// "listening <port>" once it accepts connections, so callers never have to
// guess a free port or poll. Port 0 (the default) lets the kernel choose.
'use strict'
const kinesalite = require('kinesalite')

const port = Number(process.argv[2] || process.env.KINESIS_PORT || 0)
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 })
server.on('error', (err) => {
  console.error(`kinesis emulator: cannot listen on 127.0.0.1:${port}: ${err.message}`)
  process.exit(2)
})
server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`)
})
// kinesalite throws from a request's 'error' handler when a client goes away
// mid-request (as a killed capture does), which would end the emulator and
// every stream in it. A client that left is not the emulator's failure.
process.on('uncaughtException', (err) => {
  if (err && (err.message === 'aborted' || err.code === 'ECONNRESET')) {
    console.error(`kinesis emulator: a client went away mid-request (${err.message}); carrying on`)
    return
  }
  console.error(err)
  process.exit(1)
})
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)))
}
