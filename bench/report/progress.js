import cliProgress from 'cli-progress';
/** Starts the display for `total` steps, on stderr (stdout keeps the table). `enabled: false` prints nothing. */
export function startProgress(total, enabled) {
  const started = Date.now();
  const elapsed = () => `${Math.round((Date.now() - started) / 1000)}s`;
  if (!enabled) {
    return { forScenario: () => ({ step() {}, status() {} }), log() {}, stop() {} };
  }
  if (!process.stderr.isTTY) {
    let done = 0;
    return {
      forScenario(title) {
        return {
          step(label) {
            done++;
            process.stderr.write(`[bench ${elapsed()} ${done}/${total}] ${title}: ${label}\n`);
          },
          status() {},
        };
      },
      log(message) {
        process.stderr.write(`[bench ${elapsed()}] ${message}\n`);
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: ' {bar} {percentage}% | {value}/{total} steps | {duration_formatted} | {scenario}: {label}',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(Math.max(1, total), 0, { scenario: 'starting', label: '' });
  return {
    forScenario(title) {
      return {
        step(label) {
          bar.increment(1, { scenario: title, label });
        },
        status(label) {
          bar.update({ scenario: title, label });
        },
      };
    },
    log(message) {
      process.stderr.write(`\r\x1b[K${message}\n`);
      bar.render();
    },
    stop() {
      bar.stop();
    },
  };
}
//# sourceMappingURL=progress.js.map
