#!/usr/bin/env bash
# The wrong variant fails, and for the right reason: `check-wrong-variant.sh MYKERNELS_PINMARK
# WRONG_DIR` runs the goldens of WRONG_DIR (a copy, so nothing is written beside them) and
# asserts that the run fails only because mykernels-wrong fp32 is outside its tolerance, that the
# golden still matches what the run rendered (no diff), and that the row's first divergence is
# layers.0.attn_norm, the first tap the broken RMSNorm computes.
set -euo pipefail
binary="$1"
source_dir="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -R "$source_dir" "$work/wrong"

fail() {
  echo "check-wrong-variant: $1" >&2
  echo "--- pinmark's output:" >&2
  cat "$work/out" >&2
  exit 1
}

status=0
"$binary" run "$work/wrong" --color=never >"$work/out" 2>&1 || status=$?
[ "$status" -eq 1 ] || fail "expected the run to fail with status 1, got $status"
grep -q "0 passed, 1 failed" "$work/out" || fail "expected exactly one failing case"
grep -q "target mykernels-wrong fp32 is outside its tolerance (Numerics verdict FAIL)" \
  "$work/out" || fail "expected mykernels-wrong fp32 to fail its tolerance"
if grep -q "is outside its tolerance" <(grep -v "mykernels-wrong fp32" "$work/out"); then
  fail "another target failed too"
fi
if grep -q "^--- \|^PENDING" "$work/out"; then
  fail "the golden differs from what the run rendered"
fi
# The run rendered exactly the golden, so the golden's row is what it measured.
row="$(grep '^| mykernels-wrong fp32 |' "$work/wrong/mykernels_wrong.md")" ||
  fail "the golden has no mykernels-wrong fp32 row"
case "$row" in
  *"| FAIL | \`layers.0.attn_norm\` |") ;;
  *) fail "expected FAIL at layers.0.attn_norm, the row reads: $row" ;;
esac
echo "mykernels-wrong fp32 fails as it should: $row"
