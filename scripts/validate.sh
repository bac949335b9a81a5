#!/usr/bin/env bash
# The batch test on the seed sets, against built fitlake binaries on PATH: setup, produce seed
# sets 1 and 2 as the producer, run --once as the pipeline, then check the original platform's
# counts and that every data-quality expectation ran. Used by the pipeline's validation stage
# and by the end-to-end tests.
# Usage: scripts/validate.sh WORK_DIR
set -euo pipefail
# The shipped policy maps every OS user to `developer`, who acts as the pipeline here
# (and as the producer where a command says --principal producer).
export FITLAKE_PRINCIPAL="${FITLAKE_PRINCIPAL:-pipeline}"
work="${1:?usage: scripts/validate.sh WORK_DIR}"
lh="$work/lakehouse"
fitlake --lakehouse "$lh" setup --quiet
fitlake --lakehouse "$lh" --principal producer produce --set 1 --quiet
fitlake --lakehouse "$lh" --principal producer produce --set 2 --quiet
fitlake --lakehouse "$lh" run --once --as-of 2023-03-15 --quiet
fitlake --lakehouse "$lh" status --json > "$work/status.json"
fitlake --lakehouse "$lh" quality --limit 0 > "$work/quality.txt"
python3 - "$work/status.json" "$work/quality.txt" <<'PY'
import json, sys
rows = {t["table"]: t["rows"] for t in json.load(open(sys.argv[1]))}
expected = {  # the original batch test's counts after seed sets 1 and 2
    "bronze.registered_users_bz": 10, "bronze.gym_logins_bz": 16, "silver.users": 10,
    "silver.gym_logs": 16, "silver.user_profile": 10, "silver.workouts": 32, "silver.user_bins": 10,
    "silver.completed_workouts": 16, "gold.gym_summary": 16, "gold.workout_bpm_summary": 16,
}
wrong = {t: (rows.get(t), n) for t, n in expected.items() if rows.get(t) != n}
quality = open(sys.argv[2]).read()
if wrong:
    sys.exit(f"validate: counts differ (got, expected): {wrong}")
if "valid_heartrate_in_range" not in quality:
    sys.exit("validate: the quality log has no heart_rate expectation")
print(f"validate: ok tables={len(expected)} {quality.strip().splitlines()[-1]}")
PY
