# Sourced by .ci/run and scripts/test-suites: `phase NAME CMD...` runs CMD and records how long
# it took; the table of phases is printed when the outermost script exits (however it ends), so
# a slow or failing phase is visible in CI's log. Nested scripts share one table through
# RESTATE_STREAM_PHASES.
if [ -z "${RESTATE_STREAM_PHASES:-}" ]; then
  RESTATE_STREAM_PHASES=$(mktemp -t restate-stream-phases.XXXXXX)
  export RESTATE_STREAM_PHASES
  _phases_started=$SECONDS
  _phases_report() {
    local rc=$?
    echo
    echo "== phase times =="
    cat "$RESTATE_STREAM_PHASES"
    printf '%-44s %6d s (exit %d)\n' "total" $((SECONDS - _phases_started)) "$rc"
    rm -f "$RESTATE_STREAM_PHASES"
  }
  trap _phases_report EXIT
fi

phase() {
  local name=$1 started=$SECONDS rc=0
  shift
  echo "== $name: $*"
  "$@" || rc=$?
  printf '%-44s %6d s%s\n' "$name" $((SECONDS - started)) "$([ $rc = 0 ] || echo " FAILED (exit $rc)")" \
    >>"$RESTATE_STREAM_PHASES"
  return $rc
}
