#!/usr/bin/env bash
# The CUDA build of the extension (make USE_CUDA=1) inside PostgreSQL.  The
# test runner's CUDA stage builds it in a copy of the tree and exports
# T4R_CUDA_SO (that tim4rec.so, readable by the server); without it (no CUDA
# toolkit) this file is skipped.  The pg_regress suite runs on the default
# build; here the CUDA build's SQL functions are declared under other names
# (cuda_train, cuda_evaluate) against that library and called from sessions
# that never load the default build, so both never share a backend.
# Checks: the library loads (cudart/cuBLAS resolve), device 'cuda' either
# trains on the GPU or, without a usable GPU, fails with SQLSTATE 55000 and
# a reason; 'auto' falls back to the CPU with a NOTICE; the CPU result of
# the CUDA build equals the default build's (same core code, same seed).
# Prints TAP.  Uses PGHOST/PGPORT/PGUSER/PGDATABASE (the database has tim4rec).
set -u -o pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
BIN=$T4R_PG_BINDIR
export PATH=$BIN:$PATH
SO=${T4R_CUDA_SO:-}
if [ -z "$SO" ] || [ ! -r "$SO" ]; then
    echo "1..0 # SKIP no CUDA build of the extension (T4R_CUDA_SO unset: no CUDA toolkit, or the CUDA stage did not run)"
    exit 0
fi
OUT=$(mktemp "${TMPDIR:-/tmp}/t4r_cudabuild.XXXXXX")
trap 'rm -f "$OUT"' EXIT
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
OPTS='{"epochs": 2, "hidden_size": 16, "max_seq_len": 20, "batch_size": 64, "threads": 1, "seed": 7}'

echo "1..7"
# the table, and the default build's training (its own session)
q >/dev/null 2>&1 <<SQL
SET client_min_messages = warning;
CREATE TABLE cb_inter AS
SELECT u AS user_id, ((u * 7 + s) % 40 + 1)::int AS item_id,
       timestamptz '2024-01-01' + (u * 50 + s) * interval '1 hour' AS ts
FROM generate_series(1, 80) u, generate_series(1, 8 + u % 5) s;
SELECT tim4rec_train('cb_inter', 'cb_cpu', options => '$OPTS');
SQL
t4r_ok $? "setup: table and a training with the default build"

# cuda_train / cuda_evaluate: the extension's definitions, pointed at the CUDA build
q >"$OUT" 2>&1 <<SQL
DO \$\$
DECLARE d text;
BEGIN
  d := pg_get_functiondef('tim4rec_train'::regproc);
  EXECUTE replace(replace(d, '.tim4rec_train(', '.cuda_train('), '\$libdir/tim4rec', '$SO');
  d := pg_get_functiondef('tim4rec_evaluate'::regproc);
  EXECUTE replace(replace(d, '.tim4rec_evaluate(', '.cuda_evaluate('), '\$libdir/tim4rec', '$SO');
END \$\$;
SELECT p.proname || ' ' || p.probin FROM pg_proc p WHERE p.proname IN ('cuda_train', 'cuda_evaluate') ORDER BY 1;
SQL
rc=$?
[ $rc = 0 ] && [ "$(grep -c " $SO\$" "$OUT")" = 2 ]
t4r_ok $? "the CUDA build loads and declares cuda_train / cuda_evaluate ($(tr '\n' ' ' <"$OUT" | cut -c1-200))"

# device 'cuda': trains on a GPU, or 55000 with the reason
q >"$OUT" 2>&1 <<SQL
SET client_min_messages = warning;
DO \$\$
BEGIN
  PERFORM cuda_train('cb_inter', 'cb_gpu', options => '$OPTS'::jsonb || '{"device": "cuda"}');
  RAISE WARNING 'RESULT trained';
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'RESULT % %', SQLSTATE, SQLERRM;
END \$\$;
SELECT 'DEVICE ' || coalesce((SELECT config->>'device' FROM tim4rec_models WHERE model_name = 'cb_gpu'), 'none');
SQL
res=$(grep -o 'RESULT.*' "$OUT" | head -1)
dev=$(grep '^DEVICE ' "$OUT" | cut -d' ' -f2)
case "$res" in
    "RESULT trained") [ "$dev" = cuda ]; t4r_ok $? "device 'cuda': trained on the GPU, the catalog records device cuda" ;;
    "RESULT 55000 no usable CUDA GPU"*) [ "$dev" = none ]; t4r_ok $? "device 'cuda' without a usable GPU: 55000, nothing written ($res)" ;;
    *) t4r_ok 1 "device 'cuda': unexpected outcome ($res; $(tail -3 "$OUT" | tr '\n' ' '))" ;;
esac
GPU=0; [ "$res" = "RESULT trained" ] && GPU=1

# device 'auto': the GPU when usable, else a NOTICE and the CPU
q >"$OUT" 2>&1 <<SQL
SET client_min_messages = notice;
SELECT 'TEST ' || test_ndcg10 || ' ' || valid_ndcg10 FROM cuda_train('cb_inter', 'cb_auto', options => '$OPTS'::jsonb || '{"device": "auto"}');
SELECT 'DEVICE ' || (SELECT config->>'device' FROM tim4rec_models WHERE model_name = 'cb_auto');
SQL
rc=$?
dev=$(grep '^DEVICE ' "$OUT" | cut -d' ' -f2)
if [ $GPU = 1 ]; then
    [ $rc = 0 ] && [ "$dev" = cuda ]
    t4r_ok $? "device 'auto' with a GPU: trained there (device $dev)"
else
    [ $rc = 0 ] && [ "$dev" = cpu ] && grep -q 'NOTICE:  no usable CUDA GPU (.*): training runs on the CPU' "$OUT"
    t4r_ok $? "device 'auto' without a GPU: NOTICE, CPU training, device cpu recorded ($(grep -m1 'no usable' "$OUT" | cut -c1-160))"
fi
auto_m=$(grep '^TEST ' "$OUT" | cut -d' ' -f2-)
cpu_m=$(q -c "SELECT (metrics->'test'->>'ndcg@10') || ' ' || (metrics->'valid'->>'ndcg@10') FROM tim4rec_models WHERE model_name = 'cb_cpu'")
auto_c=$(q -c "SELECT (metrics->'test'->>'ndcg@10') || ' ' || (metrics->'valid'->>'ndcg@10') FROM tim4rec_models WHERE model_name = 'cb_auto'")
if [ $GPU = 1 ]; then
    awk -v a="$auto_c" -v b="$cpu_m" 'BEGIN { split(a, x, " "); split(b, y, " "); d = x[2] - y[2]; exit !(d < 0.05 && d > -0.05) }'
    t4r_ok $? "GPU training: validation NDCG@10 close to the default build's ($auto_c vs $cpu_m)"
else
    [ -n "$cpu_m" ] && [ "$auto_c" = "$cpu_m" ]
    t4r_ok $? "the CUDA build's CPU training gives the default build's metrics exactly ($auto_c vs $cpu_m)"
fi

# batched scoring: tim4rec.device = 'cuda' in cuda_evaluate
q >"$OUT" 2>&1 <<SQL
SET tim4rec.device = 'cuda';
DO \$\$
BEGIN
  PERFORM * FROM cuda_evaluate('cb_cpu');
  RAISE WARNING 'RESULT evaluated';
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'RESULT % %', SQLSTATE, SQLERRM;
END \$\$;
SQL
res=$(grep -o 'RESULT.*' "$OUT" | head -1)
if [ $GPU = 1 ]; then
    [ "$res" = "RESULT evaluated" ]; t4r_ok $? "tim4rec.device = 'cuda': evaluation scored on the GPU"
else
    case "$res" in "RESULT 55000 no usable CUDA GPU for evaluation"*) t4r_ok 0 "tim4rec.device = 'cuda' without a GPU: evaluation fails with 55000 ($res)" ;;
        *) t4r_ok 1 "tim4rec.device = 'cuda' evaluation: unexpected ($res)" ;; esac
fi

# 'auto' evaluation equals the default build's evaluation (CPU) or is close (GPU)
a=$(q -c "SET tim4rec.device = 'auto'" -c "SET client_min_messages = warning" -c "SELECT string_agg(round(value::numeric, 6)::text, ',' ORDER BY model, split, metric, k) FROM cuda_evaluate('cb_cpu')" | tail -1)
b=$(q -c "SELECT string_agg(round(value::numeric, 6)::text, ',' ORDER BY model, split, metric, k) FROM tim4rec_evaluate('cb_cpu')" | tail -1)
if [ $GPU = 1 ]; then
    [ -n "$a" ]; t4r_ok $? "tim4rec.device = 'auto' evaluation ran on the GPU"
else
    [ -n "$a" ] && [ "$a" = "$b" ]
    t4r_ok $? "tim4rec.device = 'auto' evaluation (CPU fallback) equals the default build's ($(echo "$a" | cut -c1-60)...)"
fi
