#!/usr/bin/env bash
# Fuzzes the JSON API against its own OpenAPI document with schemathesis (PyPI, 4.x): every
# operation, every check, for a bounded time with a fixed seed. The server is built and started
# for it (`serve --demo` on a port of its own, a throwaway data directory: writes are fuzzed
# too), a demo account (the administrator of IZ-CLINIC) and the platform operator are signed
# in (each setting up its authenticator, as at a first sign-in), and a session cookie is given
# to schemathesis for the operations the document says need one. Exit 0 only with no failure.
#
#   .ci/schemathesis.sh            # 105 s, then 15 s as the operator; seed 20261201
#   FUZZ_SECONDS=900 FUZZ_SEED=7 FUZZ_AS=IZ-NURSE/tanaka .ci/schemathesis.sh
#
# Needs `schemathesis` on PATH (`.ci/run` installs it), python3, and what `serve` needs (the
# PostgreSQL server binaries). JUnit reports go to target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-105}"
seed="${FUZZ_SEED:-20261201}"
# Whom the run signs in as (a demo account: facility code/login ID).
as="${FUZZ_AS:-IZ-CLINIC/sato}"
target_dir="${CARGO_TARGET_DIR:-target}"
report_dir="$target_dir/schemathesis"

if ! command -v schemathesis >/dev/null 2>&1; then
  echo "schemathesis is not installed: pip install 'schemathesis==4.32.5' (.ci/run does)" >&2
  exit 2
fi

echo "== building the server"
cargo build -q -p renrakucho-server
binary="$target_dir/debug/renrakucho"

work="$(mktemp -d)"
# As root, the private PostgreSQL runs as `postgres`, which must reach its directory.
chmod 755 "$work"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  rm -rf "$work"
}
trap stop_server EXIT

echo "== starting the server (serve --demo, data in $work)"
RENRAKUCHO_LISTEN=127.0.0.1:0 RENRAKUCHO_DATA_DIR="$work/data" RUST_LOG=warn \
  "$binary" serve --demo >"$work/server.out" 2>"$work/server.err" &
server_pid=$!

base=""
for _ in $(seq 1 240); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server stopped before it listened:" >&2
    cat "$work/server.out" "$work/server.err" >&2
    exit 1
  fi
  base="$(sed -n 's|^Renrakucho is listening on \(http://[^/]*\)/$|\1|p' "$work/server.out")"
  [ -n "$base" ] && break
  sleep 0.5
done
if [ -z "$base" ]; then
  echo "the server did not start listening within 120 s" >&2
  cat "$work/server.err" >&2
  exit 1
fi
echo "== listening on $base"

# Sign in as the demo account and as the platform operator; list the IDs they can see (for the
# path parameters: `ids.dict`, beside the configuration).
cp .ci/schemathesis.toml "$work/schemathesis.toml"
sessions="$(python3 - "$base" "$work/ids.dict" "${as%%/*}" "${as#*/}" <<'PY'
import base64, hashlib, hmac, json, struct, sys, time, urllib.request

base, dictionary, facility, login = sys.argv[1:5]

def totp(secret, step):
    """RFC 6238 as authenticator apps do it: HMAC-SHA-1, six digits, 30-second steps."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000)

def session_cookie(response):
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        if name.strip() == "renrakucho_session":
            return rest.split(";", 1)[0]
    return None

def sign_in(facility, login):
    body = {"facility_code": facility, "login_id": login, "password": "renrakucho-demo"}
    request = urllib.request.Request(
        base + "/api/v1/auth/sign-in", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        cookie = session_cookie(response)
    if cookie is None:
        raise SystemExit(f"signing in {login} gave no session cookie")
    return set_up_second_factor(cookie)

def post(session, path, body=None):
    """POST as `session`: the answer, and the session's cookie afterwards (a new ID when the
    server cycled it)."""
    request = urllib.request.Request(
        base + "/api/v1" + path, data=json.dumps(body or {}).encode(), method="POST",
        headers={"Cookie": "renrakucho_session=" + session,
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response), session_cookie(response) or session

def set_up_second_factor(session):
    """The demo accounts have no authenticator: set one up, as a person must at first. The
    confirmation ends the person's other sessions and goes on under a new session ID."""
    begun, session = post(session, "/me/second-factor/totp")
    _, session = post(session, "/me/second-factor/totp/confirm",
                      {"one_time_code": totp(begun["secret"], int(time.time()) // 30)})
    return session

def get(session, path):
    request = urllib.request.Request(
        base + "/api/v1" + path, headers={"Cookie": "renrakucho_session=" + session})
    with urllib.request.urlopen(request) as response:
        return json.load(response)

staff, operator = sign_in(facility, login), sign_in(None, "operator")
ids = {get(staff, "/me")["id"]}
ids |= {f["id"] for f in get(staff, "/facilities")}
ids |= {g["id"] for g in get(staff, "/emergency-access")}
ids |= {r["id"] for r in get(staff, "/support-requests")}
ids |= {a["id"] for a in get(operator, "/platform/alerts")}
for patient in get(staff, "/patients"):
    ids.add(patient["id"])
    for entry in get(staff, f"/patients/{patient['id']}/entries")["entries"]:
        ids.add(entry["id"])
        ids |= {a["id"] for a in entry.get("attachments") or []}
    ids |= {c["id"] for c in get(staff, f"/patients/{patient['id']}/consents")}
with open(dictionary, "w") as out:
    out.writelines(f'"{i}"\n' for i in sorted(ids))
print(staff, operator)
PY
)"
read -r staff_session operator_session <<<"$sessions"
echo "== $(wc -l <"$work/ids.dict") IDs for the path parameters"

# From the throwaway directory: hypothesis keeps its examples in the working directory.
fuzz() { # session, seconds, report name, extra arguments
  local session="$1" time="$2" name="$3"
  shift 3
  (cd "$work" && RENRAKUCHO_FUZZ_SESSION="$session" schemathesis \
    --config-file "$work/schemathesis.toml" \
    run "$base/api/v1/openapi.json" \
    --url "$base" \
    --checks all \
    --seed "$seed" \
    --max-time "$time" \
    --workers 2 \
    --no-color \
    --report junit --report-junit-path "$report_dir/$name.xml" \
    "$@")
}

mkdir -p "$report_dir"
report_dir="$(cd "$report_dir" && pwd)"
status=0
echo "== schemathesis $(schemathesis --version | awk '{print $NF}'): every operation as $as, ${seconds} s, seed $seed"
fuzz "$staff_session" "$seconds" staff || status=$?
# The operators' own operations, which refuse everyone else.
echo "== schemathesis: the platform operators' operations as the operator, 15 s"
fuzz "$operator_session" 15 operator --include-path-regex '^/api/v1/platform/' || status=$?

if grep -q 'panicked' "$work/server.err"; then
  echo "the server panicked during the run:" >&2
  grep -A5 'panicked' "$work/server.err" >&2
  status=1
fi
exit "$status"
