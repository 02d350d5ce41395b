import cliProgress from 'cli-progress';
import type { Progress } from '../scenario.ts';

/** The run's progress display: a bar on a terminal, one line per step otherwise (CI logs). */
export interface ProgressDisplay {
  /** Progress for one scenario (its steps add to the shared bar). */
  forScenario(title: string): Progress;
  /** Prints a line without breaking the bar. */
  log(message: string): void;
  stop(): void;
}

/** Starts the display for `total` steps, on stderr (stdout keeps the table). `enabled: false` prints nothing. */
export function startProgress(total: number, enabled: boolean): ProgressDisplay {
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
