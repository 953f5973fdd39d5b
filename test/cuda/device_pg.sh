#!/bin/bash
# tim4rec_train with device 'cuda' through PostgreSQL on the GPU machine
# (called by test/cuda/device_run.sh with the unpacked carry D and OUT;
# a third argument `search` runs test/cuda/gpu_search.sh instead).
# PostgreSQL refuses to run as root: the server runs as `postgres`
# (test/scripts/lib.sh's t4r_cluster_start, created here if missing).
#   1. Beauty (amazon preset, file order): 8 epochs on the GPU, 2 on the
#      CPU (all cores), and 2 on the GPU with the same seed: time per epoch
#      and the validation NDCG@10 of the same epochs on both devices;
#   2. the ML-1M-sized synthetic table (test/bench/ml1m_like.sql),
#      movielens preset: 1 epoch on the GPU.
# Every training's row, its per-epoch history and the evaluation are logged.
set -u
D=$1
OUT=$2
P=$D/pg/usr/lib/postgresql/15/bin
# the cluster helpers of the test suite (test/scripts/lib.sh): as root
# the server runs as `postgres`, which a bare CUDA image may lack
if ! id postgres >/dev/null 2>&1; then
	useradd -M -d /tmp postgres 2>/dev/null || {
		echo "postgres:x:4242:4242::/tmp:/bin/sh" >>/etc/passwd
		echo "postgres:x:4242:" >>/etc/group
	}
fi
export T4R_PG_BINDIR=$P PATH=$P:$PATH
# shellcheck source=../scripts/lib.sh
. test/scripts/lib.sh
t4r_cluster_start 5499 || exit 1
export PGDATABASE=postgres
trap 'tail -30 "$T4R_CLUSTER_DIR/server.log"; t4r_cluster_stop' EXIT
q() { psql -X -v ON_ERROR_STOP=1 -A -F' | ' "$@"; }
q -c 'CREATE EXTENSION tim4rec' -c 'SELECT extversion FROM pg_extension WHERE extname = $$tim4rec$$'
# mode recommend_all: the benchmark of test/bench/pg_recommend_all.sh
if [ "${3:-bench}" = recommend_all ]; then
	xz -dc .devcarry/model.hex.xz >/tmp/t4r_model.hex 2>/dev/null ||
		python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' .devcarry/model.hex.xz /tmp/t4r_model.hex
	echo "cores: $(nproc), tim4rec.threads 0 = all of them"
	(cd test/bench && PGOPTIONS="-c t4r.rounds=${T4R_BENCH_ROUNDS:-3}" psql -X -v ON_ERROR_STOP=1 -v model_hex_file=/tmp/t4r_model.hex -f pg_recommend_all.sql)
	exit
fi
bash test/scripts/load_interactions.sh -f csv "$D/data/beauty.csv" || exit 1
# mode search: the validation search of issue 12 instead of the benchmarks
if [ "${3:-bench}" = search ]; then
	bash test/cuda/gpu_search.sh "$OUT"
	exit
fi
train() {	# model options
	echo "--- $1: $2"
	q -c "SELECT epochs_run, best_epoch, train_samples, seconds, round((seconds / epochs_run)::numeric, 2) AS s_per_epoch,
	             round((train_samples * epochs_run / seconds)::numeric) AS samples_per_s
	        FROM tim4rec_train('interactions', '$1', options => '$2'::jsonb)" \
	  -c "SELECT e->>'epoch' AS epoch, e->>'valid_ndcg10' AS valid_ndcg10, e->>'loss' AS loss, e->>'seconds' AS seconds
	        FROM tim4rec_models, jsonb_array_elements(history) e WHERE model_name = '$1' ORDER BY (e->>'epoch')::int" \
	  -c "SELECT config->>'device' AS device, metrics->'test' AS test FROM tim4rec_models WHERE model_name = '$1'" 2>&1
}
N=$(nproc)
train gpu8 '{"preset": "amazon", "device": "cuda", "epochs": 8, "patience": 100, "seed": 1, "order_column": "seq"}'
train gpu2 '{"preset": "amazon", "device": "cuda", "epochs": 2, "patience": 100, "seed": 2, "order_column": "seq"}'
train cpu2 "{\"preset\": \"amazon\", \"device\": \"cpu\", \"threads\": $N, \"epochs\": 2, \"patience\": 100, \"seed\": 2, \"order_column\": \"seq\"}"
q -c "SELECT model, split, metric, k, round(value::numeric, 4) FROM tim4rec_evaluate('gpu8') WHERE k = 10 AND split = 'test'"
# ML-1M-sized synthetic table, movielens preset, one GPU epoch
q -q -f test/bench/ml1m_like.sql
echo "--- ml1m_gpu1"
q -c "SELECT epochs_run, train_samples, seconds, round((train_samples * epochs_run / seconds)::numeric) AS samples_per_s
        FROM tim4rec_train('bench_ix', 'ml1m_gpu1', options => '{\"preset\": \"movielens\", \"device\": \"cuda\", \"epochs\": 1}'::jsonb)" 2>&1
q -c "SELECT e->>'epoch', e->>'valid_ndcg10', e->>'seconds' FROM tim4rec_models, jsonb_array_elements(history) e WHERE model_name = 'ml1m_gpu1'" 2>&1
