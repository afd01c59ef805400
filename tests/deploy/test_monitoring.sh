#!/usr/bin/env bash
# Monitoring test: the Prometheus alerting rules and their unit tests, the
# Prometheus configs, the Grafana provisioning and dashboard, and compose.yaml,
# each checked and each validator shown to refuse a broken copy.
#
#   tests/deploy/test_monitoring.sh          (from any folder)
#
#   - promtool check rules / test rules on deploy/prometheus/alerts.yml and
#     alerts_test.yml; then copies that must fail: a test expecting alerts
#     where none fires, and, for every alert, the rules without its `for:`
#     and without each of its exclusions (the unit tests must notice);
#   - promtool check config on prometheus.yml and prometheus-compose.yml
#     (the latter with its rule file resolved);
#   - tests/deploy/monitoring/check.py: the rules' labels and annotations,
#     the provisioning against the dashboard and compose.yaml, compose.yaml
#     against the repository (services, ports, mounts, scrape targets) and
#     the variables it gives chapter13 against `chapter13 --help`
#     (CHAPTER13_BIN, default build/release/chapter13; skipped, saying so,
#     when it is not built).
#
# Needs promtool (Debian's prometheus package) and Debian's python3-yaml,
# both installed by `scripts/deps.sh test`. Prints PASS/FAIL per check and
# ends with "N passed, M failed"; exits 0 iff nothing failed.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
PY=/usr/bin/python3
CHECK=tests/deploy/monitoring/check.py
PROM=deploy/prometheus
GRAF=deploy/grafana
BIN=${CHAPTER13_BIN:-build/release/chapter13}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/weave-monitoring-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# shellcheck source=tests/deploy/lib.sh
. tests/deploy/lib.sh

# The last lines of a command's output, on one line, for a FAIL reason.
tail_of()
{
    printf '%s' "$1" | tail -n 4 | tr '\n' ' ' | cut -c1-400
}

# accept WHAT CMD...: the command must succeed.
accept()
{
    local what=$1 out
    shift
    if out=$("$@" 2>&1 </dev/null); then
        pass "$what"
    else
        fail "$what" "$(tail_of "$out")"
    fi
}

# refuse WHAT MUST_SAY CMD...: the command must fail, and its output must
# contain MUST_SAY (so it fails for the reason the broken copy was made for).
refuse()
{
    local what=$1 say=$2 out
    shift 2
    if out=$("$@" 2>&1 </dev/null); then
        fail "$what" "accepted a broken copy"
    elif [[ $out != *"$say"* ]]; then
        fail "$what" "failed, but not saying \"$say\": $(tail_of "$out")"
    else
        pass "$what"
    fi
}

# mutated NAME KIND SRC [ARGS]: writes $TMP/NAME/<basename of SRC> broken by
# check.py's KIND and sets MUT to its path. A mutation that no longer
# applies is a failure of its own (the negative check would prove nothing),
# and returns 1.
MUT=
mutated()
{
    local name=$1 kind=$2 src=$3 out
    shift 3
    mkdir -p "$TMP/$name"
    MUT=$TMP/$name/$(basename "$src")
    if ! out=$($PY "$CHECK" mutate "$kind" "$src" "$MUT" "$@" 2>&1); then
        fail "$name" "the broken copy could not be made: $(tail_of "$out")"
        return 1
    fi
}

have_promtool=1
if ! command -v promtool >/dev/null 2>&1; then
    fail "promtool" "not installed (Debian's prometheus package: scripts/deps.sh test)"
    have_promtool=0
fi
have_yaml=1
if ! $PY -c 'import yaml' >/dev/null 2>&1; then
    fail "python3-yaml" "$PY cannot import yaml (Debian's python3-yaml: scripts/deps.sh test)"
    have_yaml=0
fi

# ------------------------------------------------------------------ alert rules

if [ $have_promtool = 1 ]; then
    accept "promtool check rules alerts.yml" promtool check rules "$PROM/alerts.yml"
    accept "promtool test rules alerts_test.yml" promtool test rules "$PROM/alerts_test.yml"

    # promtool check rules rejects a rule whose PromQL does not parse
    mkdir -p "$TMP/syntax"
    sed 's/) > 0.05/) > > 0.05/' "$PROM/alerts.yml" >"$TMP/syntax/alerts.yml"
    if cmp -s "$PROM/alerts.yml" "$TMP/syntax/alerts.yml"; then
        fail "check rules refuses bad PromQL" "the broken copy could not be made (no ') > 0.05')"
    else
        refuse "check rules refuses bad PromQL" "WeaveHighErrorRate" \
            promtool check rules "$TMP/syntax/alerts.yml"
    fi
fi

if [ $have_promtool = 1 ] && [ $have_yaml = 1 ]; then
    # the unit tests bite: expecting an alert where the series fire none fails
    if mutated tests-expect-quiet expect-quiet-alert "$PROM/alerts_test.yml"; then
        cp "$PROM/alerts.yml" "$(dirname "$MUT")/"
        refuse "test rules fails when a quiet case expects an alert" "got:" promtool test rules "$MUT"
    fi

    # every `for:` is pinned by a case where a shorter spike stays quiet
    alerts=$(sed -n 's/^ *- alert: *//p' "$PROM/alerts.yml")
    [ -n "$alerts" ] || fail "alert names" "none found in $PROM/alerts.yml"
    for a in $alerts; do
        if mutated "no-for-$a" drop-for "$PROM/alerts.yml" "$a"; then
            cp "$PROM/alerts_test.yml" "$(dirname "$MUT")/"
            refuse "test rules fails with $a's for: removed" "alertname: $a" \
                promtool test rules "$(dirname "$MUT")/alerts_test.yml"
        fi
    done

    # every threshold, exclusion and traffic floor is pinned by a case that
    # needs it: each line is ALERT ~> TEXT OF ITS EXPR ~> WHAT IT BECOMES, and
    # the unit tests must then fail on that alert
    n=0
    while IFS= read -r line; do
        n=$((n + 1))
        alert=${line%% ~> *}
        rest=${line#* ~> }
        old=${rest%% ~> *}
        new=${rest#* ~> }
        if mutated "pinned-$n" expr "$PROM/alerts.yml" "$alert" "$old" "$new"; then
            cp "$PROM/alerts_test.yml" "$(dirname "$MUT")/"
            refuse "test rules fails with $alert's '$old' made '$new'" "alertname: $alert" \
                promtool test rules "$(dirname "$MUT")/alerts_test.yml"
        fi
    done <<'EOF'
WeaveHighErrorRate ~> route!="/readyz" ~> route!="/no-route"
WeaveHighErrorRate ~> > 0.1 ~> > 0
WeaveHighLatencyP99 ~> {route!~"/ws.*|/messages/stream"} ~> {}
WeaveHighLatencyP99 ~> ) > 2.5 ~> ) > 2
WeaveEventLoopLag ~> ) > 0.1 ~> ) > 0.01
WeaveTargetDown ~> up{service="chapter13"} ~> up
WeaveNotReady ~> > 0.5 ~> > 0.3
WeavePgPoolExhausted ~> (weave_pg_pool_waiters) > 0 ~> (weave_pg_pool_waiters) >= 0
WeavePgPoolExhausted ~> >= sum by (job, instance, db) (weave_pg_pool_max_connections) ~> >= 0
WeavePgPoolExhausted ~> [2m])) > 0 ~> [2m])) >= 0
WeaveDatabaseTimeouts ~> {status="timeout"} ~> {status=~"timeout|error"}
WeaveTaskQueueBacklog ~> > 1000 ~> > 100
WeaveTaskQueueBacklog ~> [10m])) >= 0 ~> [10m])) >= -10
WeaveTaskFailures ~> ) > 0.1 ~> ) > 0.01
WeaveTaskFailures ~> [5m])) > 0.05 ~> [5m])) > 0
WeaveTaskFailures ~> {state!="RETRY"} ~> {}
WeaveTaskFailures ~> {state=~"FAILURE|REJECTED"} ~> {state="FAILURE"}
EOF
fi

if [ $have_yaml = 1 ]; then
    accept "alerts: severity, annotations, runbook anchors, a firing and a quiet test each" \
        $PY "$CHECK" alerts "$PROM/alerts.yml" "$PROM/alerts_test.yml" "$PROM/README.md"
    if mutated alerts-no-severity drop-severity "$PROM/alerts.yml"; then
        refuse "alerts check refuses an alert without severity" "severity" \
            $PY "$CHECK" alerts "$MUT" "$PROM/alerts_test.yml" "$PROM/README.md"
    fi
fi

# ------------------------------------------------------------------ Prometheus configs

if [ $have_promtool = 1 ]; then
    accept "promtool check config prometheus.yml" promtool check config "$PROM/prometheus.yml"
    if out=$(promtool check config "$PROM/prometheus-compose.yml" 2>&1) &&
        [[ $out == *"alerts.yml"* && $out == *"rules found"* ]]; then
        pass "promtool check config prometheus-compose.yml (alerts.yml loaded)"
    else
        fail "promtool check config prometheus-compose.yml (alerts.yml loaded)" "$(tail_of "$out")"
    fi
    # the rule file is really resolved: the config alone, without it, fails
    mkdir -p "$TMP/config-alone"
    cp "$PROM/prometheus-compose.yml" "$TMP/config-alone/"
    refuse "check config refuses a missing rule file" "alerts.yml" \
        promtool check config "$TMP/config-alone/prometheus-compose.yml"
fi

# ------------------------------------------------------------------ Grafana

if [ $have_yaml = 1 ]; then
    accept "grafana provisioning: apiVersion 1, the dashboard's data source uid, the mounted provider path" \
        $PY "$CHECK" grafana . compose.yaml
    if mutated grafana-uid ds-uid "$GRAF/provisioning/datasources/prometheus.yaml"; then
        refuse "grafana check refuses a data source uid the dashboard does not select" "selects uid" \
            $PY "$CHECK" grafana . compose.yaml --datasource "$MUT"
    fi
    if mutated grafana-path provider-path "$GRAF/provisioning/dashboards/weave.yaml"; then
        refuse "grafana check refuses a provider path compose does not mount" "gets no dashboard" \
            $PY "$CHECK" grafana . compose.yaml --provider "$MUT"
    fi
    if mutated grafana-panel panel-hardcoded-ds "$GRAF/weave-dashboard.json"; then
        refuse "grafana check refuses a panel with a fixed data source" "uses data source" \
            $PY "$CHECK" grafana . compose.yaml --dashboard "$MUT"
    fi
fi

# ------------------------------------------------------------------ compose.yaml

if [ $have_yaml = 1 ]; then
    accept "compose.yaml: images, depends_on, ports, mounts, scrape targets" \
        $PY "$CHECK" compose . compose.yaml
    while read -r kind say; do
        if mutated "compose-$kind" "$kind" compose.yaml "$PWD"; then
            refuse "compose check refuses $kind" "$say" $PY "$CHECK" compose . "$MUT"
        fi
    done <<'EOF'
missing-dep which is no service
dup-host-port is already mapped
wrong-container-port does not listen on
missing-bind does not exist
healthy-without-check has no healthcheck
bad-scrape-target does not listen on 9999
EOF

    if [ -x "$BIN" ]; then
        if "$BIN" --help >"$TMP/help.txt" 2>&1; then
            accept "compose.yaml: chapter13's variables are ones chapter13 --help lists" \
                $PY "$CHECK" compose-env compose.yaml "$TMP/help.txt"
            if mutated compose-env bad-env compose.yaml; then
                refuse "compose env check refuses a misspelt variable" "DATABASE_ULR" \
                    $PY "$CHECK" compose-env "$MUT" "$TMP/help.txt"
            fi
        else
            fail "chapter13 --help" "$BIN --help failed: $(tail_of "$(cat "$TMP/help.txt")")"
        fi
    else
        echo "SKIP - compose.yaml's variables against chapter13 --help: $BIN is not built (set CHAPTER13_BIN)"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
