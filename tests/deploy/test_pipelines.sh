#!/usr/bin/env bash
# Checks the hosted CI pipelines offline, with no GitHub or GitLab server:
#   .github/workflows/ci.yml, .github/workflows/release.yml, .gitlab-ci.yml
#
#   - the workflows against GitHub's schema (npm @action-validator/cli);
#   - .gitlab-ci.yml against GitLab's structure rules
#     (tests/deploy/pipelines/gitlab.mjs; GitLab has no offline validator);
#   - what the pipelines promise, by playing them for a pull request, a
#     push to main, to another branch and a tag (pipelines/policy.mjs): no
#     image pushed from a pull/merge request, deploy only from main, tests
#     as `make test` like .ci/run, logs kept;
#   - the Makefile targets and repository paths they name exist
#     (pipelines/refs.mjs; a missing Dockerfile or deploy/k8s/ is a SKIP
#     note while those land in parallel);
#   - and each checker rejects a broken copy (a misspelt key, a `needs` that
#     names no job, a job without script, ...): a checker that accepts
#     everything fails this test.
#
#   tests/deploy/test_pipelines.sh        (from any directory)
#
# Needs node and npm; installs its npm packages (pipelines/package-lock.json)
# with `npm ci` when node_modules is missing or older than the lock file.
# Prints PASS/FAIL per check and ends with "N passed, M failed".
# The perl edits below are single-quoted on purpose, and the validators are
# called through a variable.
# shellcheck disable=SC2016,SC2317
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
DIR=tests/deploy/pipelines
CI=.github/workflows/ci.yml
RELEASE=.github/workflows/release.yml
GITLAB=.gitlab-ci.yml

# shellcheck source=tests/deploy/lib.sh
. tests/deploy/lib.sh
finish()
{
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
oneline() { tr '\n' ' ' | sed 's/  */ /g; s/ $//' | cut -c1-300; }

# --- the npm packages
installed=$DIR/node_modules/.package-lock.json
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    fail "node and npm" "not found (make deps installs Debian's nodejs and npm)"
    finish
fi
if [ ! -f "$installed" ] || [ "$DIR/package-lock.json" -nt "$installed" ] || [ "$DIR/package.json" -nt "$installed" ]; then
    if ! out=$(cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error 2>&1); then
        fail "npm ci in $DIR" "$(oneline <<<"$out")"
        finish
    fi
    touch "$installed"
fi

# --- the validators, each taking one file
action_validator() { (cd "$DIR" && npx --no action-validator "$1"); }
gitlab_lint() { node "$DIR/gitlab.mjs" "$1"; }
policy_ci() { node "$DIR/policy.mjs" github-ci "$1"; }
policy_release() { node "$DIR/policy.mjs" github-release "$1"; }
policy_gitlab() { node "$DIR/policy.mjs" gitlab "$1"; }
refs() { node "$DIR/refs.mjs" . "$1"; }

# accept WHAT VALIDATOR FILE: the validator must accept the file.
accept()
{
    local what=$1 validator=$2 file=$3 out
    if out=$($validator "$PWD/$file" 2>&1); then
        pass "$what"
    else
        fail "$what" "$(oneline <<<"$out")"
    fi
}

# reject WHAT VALIDATOR FILE PERL_EDIT PATTERN: a copy of FILE changed by
# the perl substitution must be rejected, with output matching PATTERN
# (so that it fails for the reason the mutation gave it).
reject()
{
    local what=$1 validator=$2 file=$3 edit=$4 pattern=$5 out
    local copy
    copy=$TMP/$(basename "$file" | sed 's/^\.//')
    perl -0pe "$edit" "$file" >"$copy"
    if cmp -s "$file" "$copy"; then
        fail "rejects $what" "the mutation did not change $file (update the test)"
        return
    fi
    if out=$($validator "$copy" 2>&1); then
        fail "rejects $what" "accepted"
    elif ! grep -Eq -- "$pattern" <<<"$out"; then
        fail "rejects $what" "rejected, but not for /$pattern/: $(oneline <<<"$out")"
    else
        pass "rejects $what ($(grep -Em1 -- "$pattern" <<<"$out" | sed 's/^ *//; s/^[^:]*\.yml: //' | cut -c1-120))"
    fi
}

# --- GitHub: schema
for wf in "$CI" "$RELEASE"; do
    accept "action-validator accepts $wf" action_validator "$wf"
    reject "$wf with a misspelt key (runs-onn) [action-validator]" action_validator "$wf" \
        's/\bruns-on:/runs-onn:/' "runs-onn"
done
reject "$CI with needs naming no job [action-validator]" action_validator "$CI" \
    's/needs: image\b/needs: imagez/' "unresolved job imagez"

# --- GitLab: structure
accept "gitlab.mjs accepts $GITLAB" gitlab_lint "$GITLAB"
reject "$GITLAB with needs naming a missing job [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/needs: \[container-image\]/needs: [no-such-job]/' "needs 'no-such-job', which is not a job"
reject "$GITLAB with a job without script [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/(\ndeploy:\n(?:  .*\n)*?)  script:\n(?:    .*\n)+/$1/' "deploy: no script"
reject "$GITLAB with a stage not in stages [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/stage: deploy\b/stage: release/' "stage 'release' is not in stages"
reject "$GITLAB with the default stage test not in stages [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/\n  - test\n/\n/; s/\n  stage: test\n/\n/' "stage 'test' \\(the default\\) is not in stages"
reject "$GITLAB with needs on a later stage [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/    - job: build\n/    - job: deploy\n/' "needs 'deploy' of the later stage"
reject "$GITLAB with an unknown rules key [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/(\n  rules:\n    - )if: \$CI_COMMIT_BRANCH == \$CI_DEFAULT_BRANCH\n/$1iff: \$CI_COMMIT_BRANCH == \$CI_DEFAULT_BRANCH\n/' "unknown key 'iff'"
reject "$GITLAB with an illegal when [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/when: always/when: sometimes/' "when 'sometimes' is not one of"
reject "$GITLAB with a malformed expire_in [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/expire_in: 1 week/expire_in: 1 fortnight/' "expire_in '1 fortnight'"
reject "$GITLAB with a deploy job without environment [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/  environment:\n    name: production\n//' "deploy job without an environment"
reject "$GITLAB with a job named after a keyword [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/\ncontainer-image:\n/\nimage:\n/; s/\[container-image\]/[image]/' "image: unknown key 'stage'"
reject "$GITLAB with a misspelt job key [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's/(\nbuild:\n(?:  .*\n)*?)  script:/$1  scirpt:/' "build: unknown key 'scirpt'"
reject "$GITLAB with a cache keyed on three files [gitlab.mjs]" gitlab_lint "$GITLAB" \
    's{(          - tests/integration/node/package-lock.json\n)}{$1          - tests/e2e/package-lock.json\n}' "at most two files"

# --- what the pipelines promise
accept "policy: $CI (no push from pull requests, deploy from main only, make test)" policy_ci "$CI"
reject "$CI pushing from a pull request [policy.mjs]" policy_ci "$CI" \
    's/push: \$\{\{ github.event_name == .push. \}\}/push: true/' "pull request pushes"
reject "$CI deploying from any branch [policy.mjs]" policy_ci "$CI" \
    's/ && github.ref == .refs\/heads\/main.//' "deploy: runs on a push to a branch"
reject "$CI with an action not pinned to a major version [policy.mjs]" policy_ci "$CI" \
    's/actions\/checkout\@v4/actions\/checkout\@main/' "not pinned"
reject "$CI not running make test [policy.mjs]" policy_ci "$CI" \
    's/run: make test\n/run: make build\n/' 'no step runs `make test`'
accept "policy: $RELEASE (tag and sha pushed, release created)" policy_release "$RELEASE"
reject "$RELEASE without the tag's image tag [policy.mjs]" policy_release "$RELEASE" \
    's/tags=\$image:\$GITHUB_REF_NAME,/tags=/' "a tag pushes"
accept "policy: $GITLAB (no push from merge requests, deploy from the default branch only, make test)" policy_gitlab "$GITLAB"
reject "$GITLAB pushing from a merge request [policy.mjs]" policy_gitlab "$GITLAB" \
    's/PUSH_TAGS: ""/PUSH_TAGS: \$CI_COMMIT_SHA/' "merge request pushes"
reject "$GITLAB deploying from a merge request [policy.mjs]" policy_gitlab "$GITLAB" \
    's/(needs: \[container-image\]\n)  rules:\n    - if: .*\n/$1/' "deploy: runs on a merge request"
reject "$GITLAB needing a job its pipeline lacks [policy.mjs]" policy_gitlab "$GITLAB" \
    's/    - if: \$CI_COMMIT_BRANCH == \$CI_DEFAULT_BRANCH\n      variables:\n        PUSH_TAGS: .*\n//' "needs container-image, which this pipeline does not have"

# --- against the repository
if grep -qx 'make test' .ci/run; then
    pass ".ci/run runs make test (the command both pipelines run)"
else
    fail ".ci/run runs make test" "no line 'make test' in .ci/run"
fi
for f in "$CI" "$RELEASE" "$GITLAB"; do
    # The header comment (the leading # lines) must point at .ci/run.
    if sed -n '/^#/!q; p' "$f" | grep -q '\.ci/run'; then
        pass "$f: its header comment names .ci/run"
    else
        fail "$f: its header comment names .ci/run" "no mention of .ci/run before the first non-comment line"
    fi
    if out=$(refs "$f" 2>&1); then
        grep '^SKIP' <<<"$out" | sed "s|^SKIP - |SKIP - $f: |"
        pass "$f: make targets and paths exist ($(grep '^checked:' <<<"$out" | sed 's/^checked: //' | cut -c1-200))"
    else
        fail "$f: make targets and paths exist" "$(grep -v '^SKIP\|^checked:' <<<"$out" | oneline)"
    fi
done
reject "$GITLAB calling a target the Makefile lacks [refs.mjs]" refs "$GITLAB" \
    's/- make build\n/- make no-such-target\n/' "make no-such-target: no such target"
reject "$CI naming a missing path [refs.mjs]" refs "$CI" \
    "s/hashFiles\\('scripts\\/deps.sh'\\)/hashFiles('scripts\\/no-such-deps.sh')/" "scripts/no-such-deps.sh: named by the pipeline, missing"

finish
