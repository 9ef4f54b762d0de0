// Preloaded (`node --import`) into worker processes started by the scheduler, which opens an IPC
// channel to each. When the parent dies, even by SIGKILL, the channel closes: the worker is then
// asked to stop (SIGTERM, its own graceful path) and, failing that, exits. No orphans.
if (process.channel) {
  process.channel.unref(); // the channel alone must not keep the worker alive
  process.on('disconnect', () => {
    setTimeout(() => process.exit(1), 8_000).unref();
    process.kill(process.pid, 'SIGTERM');
  });
}
