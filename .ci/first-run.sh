#!/usr/bin/env bash
# The newcomer's first run, as root: clone into a directory under a 0700 parent (like /root), `npm ci`,
# `npm start`, ask GraphQL something, Ctrl-C (SIGINT to the process group), check that nothing is left
# running and that no file holding a password is readable by others, then run a small subset of the tests
# from the clone (the embedded-PostgreSQL-as-root, process-lifecycle and config tests — not the whole
# suite a second time: .ci/run already ran it). Usage: .ci/first-run.sh [vitest-json-report-path]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
report="${1:-}"

if [[ "$(id -u)" -ne 0 ]]; then
  echo "::: first-run SKIPPED: it tests the root path and this is not root"
  exit 0
fi

parent="$(mktemp -d)" # 0700, like /root
chmod 700 "${parent}"
clone="${parent}/postbox"
npm_pid=""
cleanup() {
  if [[ -n "${npm_pid}" ]] && kill -0 "${npm_pid}" 2>/dev/null; then kill -KILL -- "-${npm_pid}" 2>/dev/null || true; fi
  # As root the cluster was placed under /var/lib/postbox (the postgres user cannot reach the clone).
  local cluster
  cluster="$(readlink "${clone}/.postbox/pg" 2>/dev/null || true)"
  [[ "${cluster}" == /var/lib/postbox/clusters/* ]] && rm -rf "${cluster}"
  # …and the binaries were copied there from the clone's node_modules (.complete names the source).
  local copy
  for copy in /var/lib/postbox/pg-*; do
    [[ -f "${copy}/.complete" && "$(cat "${copy}/.complete")" == "${clone}/"* ]] && rm -rf "${copy}"
  done
  rm -rf "${parent}"
}
trap cleanup EXIT
fail() {
  echo "::: first-run: $*"
  [[ -f "${parent}/start.log" ]] && tail -40 "${parent}/start.log"
  exit 1
}

echo "::: first-run: clone into ${clone} (parent mode $(stat -c %a "${parent}"))"
git clone -q --no-checkout "${repo}" "${clone}"
git -C "${clone}" fetch -q "${repo}" HEAD
git -C "${clone}" checkout -q FETCH_HEAD
cd "${clone}"
npm ci --no-audit --no-fund --loglevel=error </dev/null
node_bin="${clone}/node_modules/.bin/node"

port="$("${node_bin}" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
echo "::: first-run: npm start on port ${port}"
# setsid: npm and its children get a process group of their own, as in a terminal; Ctrl-C = SIGINT to it.
PORT="${port}" setsid npm start >"${parent}/start.log" 2>&1 </dev/null &
npm_pid=$!
for _ in $(seq 1 240); do
  grep -qs "postbox is up" "${parent}/start.log" && break
  kill -0 "${npm_pid}" 2>/dev/null || fail "npm start exited before it was up"
  sleep 0.25
done
grep -q 'postbox is up' "${parent}/start.log" || fail "npm start was not up within 60 s"
postgres_pid="$("${node_bin}" -p 'JSON.parse(require("fs").readFileSync(".postbox/postbox.lock","utf8")).postgresPid')"

answer="$("${node_bin}" -e '
  fetch(process.argv[1], { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "{ logHead products { sku } }" }) })
    .then((r) => r.text()).then((t) => console.log(t), (e) => { console.error(String(e)); process.exit(1); });
' "http://127.0.0.1:${port}/graphql")"
echo "::: first-run: GraphQL answered ${answer:0:120}"
[[ "${answer}" == *'"data"'* ]] || fail "GraphQL did not answer with data"

echo "::: first-run: Ctrl-C"
kill -INT -- "-${npm_pid}"
for _ in $(seq 1 80); do
  kill -0 "${npm_pid}" 2>/dev/null || break
  sleep 0.25
done
kill -0 "${npm_pid}" 2>/dev/null && fail "npm start still running 20 s after Ctrl-C"
sleep 0.5
left="$(pgrep -g "${npm_pid}" || true)"
[[ -z "${left}" ]] || fail "processes left in npm start's group: ${left}"
if kill -0 "${postgres_pid}" 2>/dev/null && [[ "$(cat "/proc/${postgres_pid}/stat" 2>/dev/null | awk '{print $3}')" != Z ]]; then
  fail "the embedded postgres (pid ${postgres_pid}) is still running"
fi

readable="$(find /tmp /var/tmp "${clone}/.postbox" /var/lib/postbox -maxdepth 3 \
  \( -name 'pg-password-*' -o -name 'credentials.json' -o -name 'password' \) -perm /o=r 2>/dev/null || true)"
[[ -z "${readable}" ]] || fail "password files readable by others: ${readable}"
echo "::: first-run: stopped cleanly, no password readable by others"

echo "::: first-run: a subset of the tests from the clone"
reporter=(--reporter=default)
[[ -n "${report}" ]] && reporter+=(--reporter=json "--outputFile=${report}")
npm test -- "${reporter[@]}" test/db/embedded-as-root.test.ts test/cli/process-lifecycle.test.ts test/foundation/config.test.ts </dev/null
