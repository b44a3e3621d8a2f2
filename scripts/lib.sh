# shellcheck shell=bash
# Shell helpers shared by scripts/run, scripts/test and .ci/run: the virtualenv, the environment
# defaults, and the checks (and, on this machine, the starting) of RabbitMQ and PostgreSQL.
#
# Source it from a bash script that runs with `set -euo pipefail`. It sets ROOT and VENV and
# defines functions; it runs nothing by itself. Plain bash 3.2 and Python: no curl, timeout or
# sha256sum needed, so it also works on a fresh Debian or a Mac.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$ROOT/.venv"

say()  { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# --- small probes, in Python ---------------------------------------------------------------------

_ICS_PY='
import base64, hashlib, secrets, socket, sys, urllib.error, urllib.parse, urllib.request

cmd, args = sys.argv[1], sys.argv[2:]

def hostport(uri, default):
    u = urllib.parse.urlsplit(uri if "//" in uri else "//" + uri)
    if u.scheme == "amqps" and default == 5672:
        default = 5671
    return u.hostname or "127.0.0.1", u.port or default

if cmd == "hostport":        # URI DEFAULT_PORT -> "host port"
    print(*hostport(args[0], int(args[1])))
elif cmd == "tcp":           # HOST PORT -> exit 0 when something accepts a connection
    try:
        socket.create_connection((args[0], int(args[1])), timeout=2).close()
    except OSError:
        sys.exit(1)
elif cmd == "http":          # URL -> the status of a GET (0: no answer); user:pass@ is basic auth
    u = urllib.parse.urlsplit(args[0])
    netloc = u.hostname if ":" not in (u.hostname or "") else "[%s]" % u.hostname
    netloc += ":%d" % u.port if u.port else ""
    req = urllib.request.Request(urllib.parse.urlunsplit(u._replace(netloc=netloc)))
    if u.username is not None:
        cred = "%s:%s" % (urllib.parse.unquote(u.username), urllib.parse.unquote(u.password or ""))
        req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            print(resp.status)
    except urllib.error.HTTPError as exc:
        print(exc.code)
    except (OSError, ValueError):
        print(0)
elif cmd == "public":        # URI -> the same URI without its password
    u = urllib.parse.urlsplit(args[0])
    if u.password is None:
        print(args[0])
    else:
        print(urllib.parse.urlunsplit(u._replace(netloc=u.netloc.replace(":" + u.password + "@", "@", 1))))
elif cmd == "bare":          # URI -> the same URI without user and password
    u = urllib.parse.urlsplit(args[0])
    print(urllib.parse.urlunsplit(u._replace(netloc=u.netloc.rpartition("@")[2])))
elif cmd == "user":          # URI -> its user name ("" when none)
    print(urllib.parse.unquote(urllib.parse.urlsplit(args[0]).username or ""))
elif cmd == "hash":          # FILE... -> one sha256 over their names and contents
    h = hashlib.sha256()
    for name in args:
        h.update(name.encode() + b"\0")
        try:
            with open(name, "rb") as f:
                h.update(f.read())
        except OSError:
            pass
    print(h.hexdigest())
elif cmd == "token":
    print(secrets.token_urlsafe(32))
elif cmd == "json_field":    # FILE KEY -> the value of KEY in the JSON object in FILE
    import json
    with open(args[0]) as f:
        print(json.load(f)[args[1]])
elif cmd == "pg":            # DSN -> exit 0 when psycopg2 can connect (2 when psycopg2 is missing)
    try:
        import psycopg2
    except ImportError:
        sys.exit(2)
    try:
        psycopg2.connect(args[0], connect_timeout=3).close()
    except psycopg2.Error as exc:
        print(str(exc).strip().splitlines()[0], file=sys.stderr)
        sys.exit(1)
else:
    sys.exit("lib.sh: unknown probe " + cmd)
'

# The venv's Python once it exists (it starts faster than a pyenv shim), else the system's.
_ics_py() {
    local py=python3
    [[ -x $VENV/bin/python ]] && py=$VENV/bin/python
    "$py" -c "$_ICS_PY" "$@"
}

tcp_open()    { _ics_py tcp "$1" "$2"; }
http_status() { _ics_py http "$1"; }
http_ok()     { local s; s=$(http_status "$1"); [[ $s -ge 200 && $s -lt 400 ]]; }
public_uri()  { _ics_py public "$1"; }

# wait_until SECONDS COMMAND...: retry COMMAND once a second until it succeeds or time runs out.
wait_until() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < end)) || return 1
        sleep 1
    done
}

_is_local() { [[ $1 == 127.* || $1 == localhost || $1 == ::1 ]]; }

# A server command may live in an sbin directory that a normal user's PATH lacks.
_find_cmd() {
    local dir
    command -v "$1" 2>/dev/null && return 0
    for dir in /usr/sbin /usr/local/sbin /opt/homebrew/sbin /usr/lib/rabbitmq/bin; do
        [[ -x $dir/$1 ]] && { echo "$dir/$1"; return 0; }
    done
    return 1
}

# --- environment ---------------------------------------------------------------------------------

# The broker settings every part (and every test) reads; defaults work on one machine.
ics_broker_env() {
    export AMQP_URI="${AMQP_URI:-amqp://guest:guest@127.0.0.1:5672/}"
    export ICS_MANAGEMENT_URI="${ICS_MANAGEMENT_URI:-http://guest:guest@127.0.0.1:15672}"
    mkdir -p "$ROOT/var/log"
}

# The gateway's settings (deploy/gunicorn.conf.py and the centre read them).
ics_gateway_env() {
    export ICS_DB_URI="${ICS_DB_URI:-sqlite:///$ROOT/var/ics.db}"   # four slashes: absolute
    export ICS_BIND="${ICS_BIND:-127.0.0.1:8080}"
    export ICS_WORKERS="${ICS_WORKERS:-2}"
    export ICS_THREADS="${ICS_THREADS:-16}"
}

# ics_admin: the first administrator of this machine's centre, made once by `ics bootstrap`
# (phone ICS_ADMIN_PHONE, default 13800000000; a generated password kept in var/admin-password;
# its console terminal in var/admin.json). Call after `ics db upgrade`.
ics_admin() {
    export ICS_ADMIN_PHONE="${ICS_ADMIN_PHONE:-13800000000}"
    local pw_file="$ROOT/var/admin-password" boot="$ROOT/var/admin.json"
    if [[ ! -s $pw_file ]]; then
        (umask 077 && _ics_py token >"$pw_file")
    fi
    if [[ ! -s $boot ]]; then
        if ! ICS_BOOTSTRAP_PASSWORD=$(<"$pw_file") .venv/bin/ics bootstrap \
            --phone "$ICS_ADMIN_PHONE" --name "Administrator" 2>"$ROOT/var/log/bootstrap.log" \
            | tail -n 1 >"$boot.tmp"; then
            rm -f "$boot.tmp"
            warn "ics bootstrap failed (see var/log/bootstrap.log); an administrator may exist already"
            return 0
        fi
        mv "$boot.tmp" "$boot"
    fi
    ICS_TERMINAL=$(_ics_py json_field "$boot" terminal_id)
    export ICS_TERMINAL
}

# --- the virtualenv ------------------------------------------------------------------------------

# ensure_venv base|test: .venv with the project installed editable (with the test extra for
# `test`) and every services/*/requirements.txt. pip runs only when pyproject.toml or one of those
# files changed since the last install: a stamp in .venv keeps their hash.
ensure_venv() {
    local flavour=$1 py=${PYTHON:-python3} reqs=() args=() f want target=$ROOT
    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        command -v "$py" >/dev/null ||
            die "python3 is not installed. Debian/Ubuntu: sudo apt-get install python3 python3-venv; macOS: brew install python@3.11"
        "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            die "Python 3.11 or newer is needed; $py is $("$py" -V 2>&1)"
        say "creating the virtualenv .venv"
        "$py" -m venv --clear "$VENV" ||
            die "could not create .venv. Debian/Ubuntu: sudo apt-get install python3-venv"
    fi
    for f in "$ROOT"/services/*/requirements.txt; do
        if [[ -f $f ]]; then
            reqs+=("$f")
            args+=(-r "$f")
        fi
    done
    want=$(_ics_py hash "$ROOT/pyproject.toml" ${reqs[@]+"${reqs[@]}"})
    # An install with the test extra also serves a run without it.
    if [[ $(cat "$VENV/.ics-stamp-test" 2>/dev/null) == "$want" ]] ||
        [[ $flavour == base && $(cat "$VENV/.ics-stamp-base" 2>/dev/null) == "$want" ]]; then
        say "virtualenv .venv is up to date"
        return 0
    fi
    if [[ $flavour == test ]]; then target="${ROOT}[test]"; fi
    say "installing the project into .venv ($flavour)"
    rm -f "$VENV"/.ics-stamp-*
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -e "$target" ${args[@]+"${args[@]}"}
    echo "$want" >"$VENV/.ics-stamp-$flavour"
}

# --- RabbitMQ ------------------------------------------------------------------------------------

rabbitmq_howto() {
    cat >&2 <<'EOF'
RabbitMQ is the one server the mesh needs. Get it with one of:
  Debian/Ubuntu:  sudo apt-get install rabbitmq-server
                  sudo rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus
  macOS:          brew install rabbitmq && brew services start rabbitmq
  Docker:         docker run -d -p 5672:5672 -p 15672:15672 rabbitmq:3-management
or point AMQP_URI (and ICS_MANAGEMENT_URI) at a broker you have.
EOF
    if [[ -n ${ICS_HOWTO_EXTRA:-} ]]; then echo "$ICS_HOWTO_EXTRA" >&2; fi
}

# ensure_rabbitmq: the broker of AMQP_URI accepts connections. When it is down, local and
# installed here, a node is started (rabbitmq-server -detached); otherwise say how to get one.
ensure_rabbitmq() {
    local host port server where
    read -r host port < <(_ics_py hostport "$AMQP_URI" 5672)
    where="$host:$port"
    if tcp_open "$host" "$port"; then
        say "RabbitMQ answers on $where"
        return 0
    fi
    if ! _is_local "$host"; then
        die "nothing answers on $where (AMQP_URI=$(public_uri "$AMQP_URI"))"
    fi
    if ! server=$(_find_cmd rabbitmq-server); then
        printf 'ERROR: RabbitMQ is not running on %s and not installed on this machine.\n' "$where" >&2
        rabbitmq_howto
        exit 1
    fi
    if [[ $port != 5672 ]]; then
        printf 'ERROR: nothing answers on %s (AMQP_URI=%s); a local node listens on 5672.\n' \
            "$where" "$(public_uri "$AMQP_URI")" >&2
        rabbitmq_howto
        exit 1
    fi
    say "RabbitMQ is not running; starting a local node ($server -detached, up to 60 s)"
    if ! "$server" -detached >>"$ROOT/var/log/rabbitmq-start.log" 2>&1; then
        tail -n 5 "$ROOT/var/log/rabbitmq-start.log" >&2 || true
        die "could not start RabbitMQ; start it as root: sudo systemctl start rabbitmq-server (or sudo rabbitmq-server -detached)"
    fi
    wait_until 60 tcp_open "$host" "$port" ||
        die "RabbitMQ did not open $where within 60 s; see var/log/rabbitmq-start.log and /var/log/rabbitmq/"
    say "RabbitMQ answers on $where"
}

# ensure_rabbitmq_management required|optional: the management API of ICS_MANAGEMENT_URI answers
# (the bus view and the integration tests use it). On a local broker the management and
# prometheus plugins are enabled if need be. required: exit when it can't be had; optional: warn.
ensure_rabbitmq_management() {
    local need=${1:-optional} url="${ICS_MANAGEMENT_URI%/}/api/overview" status host port plugins
    local shown
    shown=$(public_uri "${ICS_MANAGEMENT_URI%/}")
    status=$(http_status "$url")
    if [[ $status == 200 ]]; then
        say "RabbitMQ management API answers on $shown"
        return 0
    fi
    if [[ $status == 401 ]]; then
        _management_missing "$need" "RabbitMQ's management API at $shown refuses the credentials of ICS_MANAGEMENT_URI"
        return 0
    fi
    read -r host port < <(_ics_py hostport "$ICS_MANAGEMENT_URI" 15672)
    if [[ $status == 0 ]] && _is_local "$host" && plugins=$(_find_cmd rabbitmq-plugins); then
        say "enabling RabbitMQ's management and prometheus plugins (up to 60 s)"
        if "$plugins" enable rabbitmq_management rabbitmq_prometheus \
            >>"$ROOT/var/log/rabbitmq-start.log" 2>&1 && wait_until 60 http_ok "$url"; then
            say "RabbitMQ management API answers on $shown"
            return 0
        fi
        tail -n 5 "$ROOT/var/log/rabbitmq-start.log" >&2 || true
    fi
    _management_missing "$need" "RabbitMQ's management API does not answer at $shown (status $status).
  Enable it on the broker: sudo rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus
  (with Docker, use the rabbitmq:3-management image)"
}

_management_missing() {
    if [[ $1 == required ]]; then
        die "$2"
    fi
    warn "$2
  The mesh runs without it; only the console's bus view stays empty."
}

# --- PostgreSQL (tests only) ---------------------------------------------------------------------

# ICS_TEST_PG_DSN selects the PostgreSQL variants of the tests. Kept when set; otherwise the local
# server's `test` database when it answers; otherwise left unset, so those tests skip.
select_test_pg_dsn() {
    local dsn=postgresql://postgres@127.0.0.1:5432/test rc=0
    if [[ -n ${ICS_TEST_PG_DSN:-} ]]; then
        export ICS_TEST_PG_DSN
        say "PostgreSQL tests: on, ICS_TEST_PG_DSN=$(public_uri "$ICS_TEST_PG_DSN")"
        return 0
    fi
    if ! tcp_open 127.0.0.1 5432; then
        say "PostgreSQL tests: skipped (nothing on 127.0.0.1:5432; set ICS_TEST_PG_DSN to run them)"
        return 0
    fi
    _ics_py pg "$dsn" 2>"$ROOT/var/log/pg-probe.log" || rc=$?
    if [[ $rc == 1 ]]; then
        say "PostgreSQL tests: skipped ($dsn refused: $(head -n 1 "$ROOT/var/log/pg-probe.log"))"
        say "  create it with: createdb -h 127.0.0.1 -U postgres test, or set ICS_TEST_PG_DSN"
        return 0
    fi
    export ICS_TEST_PG_DSN=$dsn
    say "PostgreSQL tests: on, ICS_TEST_PG_DSN=$dsn"
}
