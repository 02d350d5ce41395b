// Dead letters: filter (consumer, type, error text), read each one's error, stack, payload and metadata, and
// redrive one, a selection or all of a consumer's (in stream order, after a confirmation). Keyset pages of
// 50: the 200th page costs what the first does.
import { useState } from 'preact/hooks';
import { gql, usePoll } from './api.js';
import { Confirm, ErrorNote, html, json, num, route, when } from './ui.js';

const PAGE = 50;
const DEAD_LETTERS = `query DeadLetters($consumer: String, $type: String, $errorContains: String, $first: Int, $after: String) {
  deadLetters(consumer: $consumer, type: $type, errorContains: $errorContains, first: $first, after: $after) {
    edges { node {
      id consumer partition attempts error stack firstFailedAt deadAt redriveRequestedAt
      event { id type position streamType streamId streamVersion occurredAt payload metadata }
    } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const CONSUMERS = '{ consumers { name deadLetters } }';
const REDRIVE = `mutation Redrive($consumer: String!, $ids: [ID!]) {
  redriveDeadLetters(consumer: $consumer, ids: $ids) { __typename ... on RedriveDeadLettersSuccess { queued } ... on Error { message } }
}`;

const setHash = (params) => {
  location.hash = route('/dead-letters', params);
};

export function DeadLettersView({ params, admin }) {
  const filters = {
    consumer: params.consumer ?? '',
    type: params.type ?? '',
    errorContains: params.error ?? '',
  };
  // Cursors of the pages before this one: Previous pops, Next pushes.
  const [pages, setPages] = useState([null]);
  const after = pages.at(-1);
  const key = `${filters.consumer}|${filters.type}|${filters.errorContains}|${after}`;
  const list = usePoll(
    () =>
      gql(DEAD_LETTERS, {
        consumer: filters.consumer || null,
        type: filters.type || null,
        errorContains: filters.errorContains || null,
        first: PAGE,
        after,
      }).then((d) => d.deadLetters),
    0,
    [key],
  );
  const consumers = usePoll(() => gql(CONSUMERS).then((d) => d.consumers), 0, []);
  const [selected, setSelected] = useState(new Set());
  const [open, setOpen] = useState(new Set());
  const [confirm, setConfirm] = useState(undefined);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState(undefined);
  const [actionError, setActionError] = useState(undefined);
  const letters = list.data?.edges.map((edge) => edge.node) ?? [];

  const toggle = (set, id) => {
    const next = new Set(set);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    return next;
  };

  /** Redrives per consumer (the mutation takes one consumer): `ids` per consumer, or null for all of it. */
  const redrive = async (plan) => {
    setBusy(true);
    setActionError(undefined);
    try {
      let queued = 0;
      for (const [consumer, ids] of plan) {
        const result = (await gql(REDRIVE, { consumer, ids })).redriveDeadLetters;
        if (result.message) throw new Error(result.message);
        queued += result.queued;
      }
      setNotice(`${num(queued)} dead letter${queued === 1 ? '' : 's'} queued for redrive, in stream order.`);
      setSelected(new Set());
      setConfirm(undefined);
      list.refresh();
      consumers.refresh();
    } catch (error) {
      setActionError(error);
      setConfirm(undefined);
    } finally {
      setBusy(false);
    }
  };

  const planFor = (chosen) => {
    const plan = new Map();
    for (const letter of chosen) plan.set(letter.consumer, [...(plan.get(letter.consumer) ?? []), letter.id]);
    return plan;
  };
  const chosen = letters.filter((letter) => selected.has(letter.id));
  const filterConsumer = consumers.data?.find((c) => c.name === filters.consumer);

  return html`<h1>Dead letters</h1>
    <form class="filters" onSubmit=${(event) => {
      event.preventDefault();
      const form = new FormData(event.currentTarget);
      setPages([null]);
      setSelected(new Set());
      setHash({
        consumer: form.get('consumer'),
        type: form.get('type').trim(),
        error: form.get('error').trim(),
      });
    }}>
      <label>Consumer
        <select name="consumer" value=${filters.consumer}>
          <option value="">Any</option>
          ${(consumers.data ?? []).map((c) => html`<option value=${c.name}>${c.name} (${num(c.deadLetters)})</option>`)}
        </select>
      </label>
      <label>Event type <input name="type" value=${filters.type} /></label>
      <label>Error contains <input name="error" value=${filters.errorContains} maxlength="200" /></label>
      <button type="submit">Filter</button>
    </form>
    <${ErrorNote} error=${list.error} />
    ${notice ? html`<p class="notice" role="status">${notice}</p>` : null}
    <${ErrorNote} error=${actionError} />
    ${
      admin
        ? html`<div class="actions">
            <label class="check"><input type="checkbox" checked=${letters.length > 0 && chosen.length === letters.length}
              disabled=${letters.length === 0}
              onChange=${(event) => setSelected(new Set(event.currentTarget.checked ? letters.map((l) => l.id) : []))} /> Select this page</label>
            <button type="button" disabled=${chosen.length === 0 || busy}
              onClick=${() => setConfirm({ plan: planFor(chosen), what: `the ${chosen.length} selected dead letter${chosen.length === 1 ? '' : 's'}` })}>
              Redrive selected (${chosen.length})</button>
            ${
              filterConsumer
                ? html`<button type="button" disabled=${busy || filterConsumer.deadLetters === 0}
                    onClick=${() =>
                      setConfirm({
                        plan: new Map([[filterConsumer.name, null]]),
                        what: `all ${num(filterConsumer.deadLetters)} open dead letters of ${filterConsumer.name}${filters.type || filters.errorContains ? ' (every one, not only those matching the type and error filters)' : ''}`,
                      })}>Redrive all of ${filterConsumer.name}…</button>`
                : html`<span class="hint">Choose a consumer to redrive all of its dead letters.</span>`
            }
          </div>`
        : null
    }
    ${list.data && letters.length === 0 ? html`<p>No open dead letters${filters.consumer || filters.type || filters.errorContains ? ' match these filters' : ''}.</p>` : null}
    <ol class="letters">
      ${letters.map(
        (letter) => html`<li class="letter" data-letter=${letter.id}>
          <div class="letter-head">
            ${
              admin
                ? html`<input type="checkbox" id=${`pick-${letter.id}`} checked=${selected.has(letter.id)}
                    onChange=${() => setSelected(toggle(selected, letter.id))} aria-label=${`Select dead letter ${letter.id}`} />`
                : null
            }
            <div class="letter-summary">
              <p><strong>${letter.event.type}</strong>${' on '}<a href=${route('/events', { streamType: letter.event.streamType, streamId: letter.event.streamId })}>${letter.event.streamType}/${letter.event.streamId}</a>${' '}
                #${letter.event.streamVersion} · ${letter.consumer} · ${letter.attempts} attempt${letter.attempts === 1 ? '' : 's'} · dead ${when(letter.deadAt)}
                ${letter.redriveRequestedAt ? html` · <em>redrive queued</em>` : null}</p>
              <p class="error-text" data-testid="letter-error">${letter.error}</p>
            </div>
            <div class="letter-buttons">
              <button type="button" aria-expanded=${open.has(letter.id)} aria-controls=${`letter-${letter.id}`}
                onClick=${() => setOpen(toggle(open, letter.id))}>${open.has(letter.id) ? 'Hide' : 'Details'}</button>
              ${
                admin
                  ? html`<button type="button" disabled=${busy} onClick=${() =>
                      setConfirm({
                        plan: planFor([letter]),
                        what: `dead letter ${letter.id} (${letter.event.type} on ${letter.event.streamType}/${letter.event.streamId} #${letter.event.streamVersion}) of ${letter.consumer}`,
                      })}>Redrive</button>`
                  : null
              }
            </div>
          </div>
          ${
            open.has(letter.id)
              ? html`<div class="letter-detail" id=${`letter-${letter.id}`}>
                  <h3>Stack</h3><pre>${letter.stack ?? '(none recorded)'}</pre>
                  <h3>Payload</h3><pre>${json(letter.event.payload)}</pre>
                  <h3>Metadata</h3><pre>${json(letter.event.metadata)}</pre>
                  <p class="meta">Event ${letter.event.id} at position ${letter.event.position}, occurred ${when(letter.event.occurredAt)}; first failed ${when(letter.firstFailedAt)}; partition ${letter.partition}.</p>
                </div>`
              : null
          }
        </li>`,
      )}
    </ol>
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled=${pages.length === 1} onClick=${() => setPages(pages.slice(0, -1))}>Previous page</button>
      <span>Page ${pages.length}</span>
      <button type="button" disabled=${!list.data?.pageInfo.hasNextPage}
        onClick=${() => setPages([...pages, list.data.pageInfo.endCursor])}>Next page</button>
    </nav>
    ${
      confirm
        ? html`<${Confirm} title="Redrive dead letters?" confirmLabel="Redrive" busy=${busy}
            onCancel=${() => setConfirm(undefined)} onConfirm=${() => redrive(confirm.plan)}>
            <p data-testid="redrive-summary">Delivers ${confirm.what} again, in stream order. Each is marked redriven once its handler succeeds.</p>
          <//>`
        : null
    }`;
}
