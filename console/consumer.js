// One consumer: its partitions (checkpoint, head, lag), the streams waiting on a failed event with their last
// error, and — with an admin key — pause, resume and replay (after a confirmation that says what comes again).
import { useState } from 'preact/hooks';
import { gql, POLL_MS, usePoll } from './api.js';
import { Confirm, duration, ErrorNote, html, num, route, when } from './ui.js';

const CONSUMER = `query Consumer($name: String!) {
  consumer(name: $name) {
    name status partitions lag oldestPendingMs retrying blocked deadLetters handled
    checkpoints { partition checkpointPosition headPosition lag oldestPendingAt retrying blocked deadLetters handled updatedAt }
    stuckStreams(first: 100) { streamType streamId partition eventPosition streamVersion attempts nextAttemptAt lastError firstFailedAt lastFailedAt }
  }
}`;
const PREVIEW = `query Preview($name: String!, $after: String) {
  consumer(name: $name) { replayPreview(afterPosition: $after) { events streams firstPosition lastPosition eventTypes } }
}`;
const RESULT = '__typename ... on Error { message }';
const PAUSE = `mutation Pause($name: String!) { pauseConsumer(name: $name) { ${RESULT} } }`;
const RESUME = `mutation Resume($name: String!) { resumeConsumer(name: $name) { ${RESULT} } }`;
const REPLAY = `mutation Replay($input: ReplayConsumerInput!) { replayConsumer(input: $input) { ${RESULT} } }`;

/** Runs a mutation with a typed result union; throws its message when it is an error type. */
async function act(query, variables, field) {
  const result = (await gql(query, variables))[field];
  if (result.message) throw new Error(result.message);
  return result;
}

export function ConsumerView({ name, admin }) {
  if (!admin)
    return html`<h1>${name}</h1><p class="note" role="alert">Consumers need an <code>admin</code> key; this one can read the event log.</p>`;
  return html`<${ConsumerDetail} name=${name} />`;
}

function ConsumerDetail({ name }) {
  const poll = usePoll(async () => (await gql(CONSUMER, { name })).consumer, POLL_MS, [name]);
  const [notice, setNotice] = useState(undefined);
  const [actionError, setActionError] = useState(undefined);
  const [busy, setBusy] = useState(false);
  const [after, setAfter] = useState('');
  const [preview, setPreview] = useState(undefined);
  const c = poll.data;

  const run = async (what, done) => {
    setBusy(true);
    setActionError(undefined);
    try {
      await what();
      setNotice(done);
      poll.refresh();
    } catch (error) {
      setActionError(error);
    } finally {
      setBusy(false);
    }
  };

  if (poll.data === null)
    return html`<h1>${name}</h1><p class="error" role="alert">No consumer named ${name}.</p>`;
  return html`<p class="crumbs"><a href="#/">Overview</a> › consumer</p>
    <h1>${name} ${c ? html`<span class=${`status ${c.status}`}>${c.status}</span>` : null}</h1>
    <${ErrorNote} error=${poll.error} />
    ${
      c
        ? html`<dl class="metrics wide">
        <div><dt>Lag</dt><dd data-metric="lag">${num(c.lag)}</dd></div>
        <div><dt>Oldest pending</dt><dd>${duration(c.oldestPendingMs)}</dd></div>
        <div><dt>Retrying</dt><dd>${num(c.retrying)}</dd></div>
        <div><dt>Blocked</dt><dd>${num(c.blocked)}</dd></div>
        <div><dt>Dead letters</dt><dd><a href=${route('/dead-letters', { consumer: name })}>${num(c.deadLetters)}</a></dd></div>
        <div><dt>Handled</dt><dd data-metric="handled">${num(c.handled)}</dd></div>
      </dl>`
        : null
    }
    ${
      c
        ? html`<section class="panel actions-panel" aria-labelledby="actions-h">
            <h2 id="actions-h">Actions</h2>
            <div class="actions">
              ${
                c.status === 'paused'
                  ? html`<button type="button" class="primary" disabled=${busy} onClick=${() =>
                      run(
                        () => act(RESUME, { name }, 'resumeConsumer'),
                        `${name} resumed: delivery restarts from its checkpoints.`,
                      )}>Resume</button>`
                  : html`<button type="button" disabled=${busy} onClick=${() =>
                      run(
                        () => act(PAUSE, { name }, 'pauseConsumer'),
                        `${name} paused: events accumulate until it is resumed.`,
                      )}>Pause</button>`
              }
            </div>
            <form class="replay" onSubmit=${(event) => {
              event.preventDefault();
              run(async () => {
                const data = await gql(PREVIEW, { name, after: after.trim() || null });
                setPreview({ after: after.trim(), ...data.consumer.replayPreview });
              }, undefined);
            }}>
              <label for="replay-after">Replay after log position</label>
              <input id="replay-after" inputmode="numeric" pattern="[0-9]*" placeholder="start of the log"
                value=${after} onInput=${(event) => setAfter(event.currentTarget.value)} />
              <button type="submit" disabled=${busy}>Replay…</button>
            </form>
            ${notice ? html`<p class="notice" role="status">${notice}</p>` : null}
            <${ErrorNote} error=${actionError} />
          </section>`
        : null
    }
    ${
      preview
        ? html`<${Confirm}
            title=${`Replay ${name}?`}
            confirmLabel=${`Replay ${num(preview.events)} events`}
            busy=${busy}
            onCancel=${() => setPreview(undefined)}
            onConfirm=${() =>
              run(
                async () => {
                  await act(
                    REPLAY,
                    { input: { name, afterPosition: preview.after || null } },
                    'replayConsumer',
                  );
                  setPreview(undefined);
                },
                `Replay of ${name} started: ${num(preview.events)} events are being re-delivered in order.`,
              )}>
            <p data-testid="replay-summary">${[
              'Re-delivers ',
              html`<strong>${num(preview.events)}</strong>`,
              ` event${preview.events === 1 ? '' : 's'}`,
              preview.events
                ? ` (positions ${preview.firstPosition}–${preview.lastPosition}, on ${num(preview.streams)} stream${preview.streams === 1 ? '' : 's'})`
                : '',
              ' to ',
              html`<strong>${name}</strong>`,
              `: every event of its types (${preview.eventTypes.join(', ')}) after ${preview.after ? `position ${preview.after}` : 'the start of the log'}, in order, plus any appended meanwhile.`,
            ]}</p>
            <p>Its handler sees them again; its retry state is cleared and its dead letters stay as history.</p>
          <//>`
        : null
    }
    ${c ? html`<${Partitions} partitions=${c.checkpoints} /><${StuckStreams} streams=${c.stuckStreams} />` : null}`;
}

function Partitions({ partitions }) {
  return html`<section aria-labelledby="partitions-h">
    <h2 id="partitions-h">Partitions</h2>
    <div class="scroll"><table data-testid="partitions">
      <thead><tr>
        <th scope="col" class="num">Partition</th><th scope="col" class="num">Checkpoint</th><th scope="col" class="num">Head</th>
        <th scope="col" class="num">Lag</th><th scope="col">Oldest pending</th><th scope="col" class="num">Retrying</th>
        <th scope="col" class="num">Blocked</th><th scope="col" class="num">Dead</th><th scope="col" class="num">Handled</th>
      </tr></thead>
      <tbody>${partitions.map(
        (p) => html`<tr>
          <td class="num">${p.partition}</td><td class="num">${p.checkpointPosition}</td><td class="num">${p.headPosition}</td>
          <td class="num">${num(p.lag)}</td><td>${p.oldestPendingAt ? when(p.oldestPendingAt) : '—'}</td>
          <td class="num">${p.retrying}</td><td class="num">${p.blocked}</td><td class="num">${p.deadLetters}</td>
          <td class="num">${num(p.handled)}</td>
        </tr>`,
      )}</tbody>
    </table></div>
  </section>`;
}

function StuckStreams({ streams }) {
  return html`<section aria-labelledby="stuck-h">
    <h2 id="stuck-h">Retrying and blocked streams</h2>
    ${
      streams.length === 0
        ? html`<p>None: every stream is flowing.</p>`
        : html`<div class="scroll"><table data-testid="stuck">
          <thead><tr><th scope="col">Stream</th><th scope="col" class="num">Event</th><th scope="col" class="num">Attempts</th>
            <th scope="col">State</th><th scope="col">Last error</th><th scope="col">Failing since</th></tr></thead>
          <tbody>${streams.map(
            (s) => html`<tr>
              <td><a href=${route('/events', { streamType: s.streamType, streamId: s.streamId })}>${s.streamType}/${s.streamId}</a></td>
              <td class="num">#${s.streamVersion} @${s.eventPosition}</td><td class="num">${s.attempts}</td>
              <td>${s.nextAttemptAt ? `retry at ${when(s.nextAttemptAt)}` : 'blocked until redriven'}</td>
              <td class="error-text">${s.lastError}</td><td>${when(s.firstFailedAt)}</td>
            </tr>`,
          )}</tbody></table></div>`
    }
  </section>`;
}
