# arms.sh - the arms of test/quality/ablation.sh in one table, sourced by
# ablation.sh (the options each arm trains with) and ablation_report.sh
# (labels, the order of the tables, the paired comparisons).  A new arm is
# one line here.  Columns, separated by "|":
#   name | JSON members added to the training options | label in the report |
#   the arms it is compared with (paired bootstrap of this arm minus each)
# Every arm names its tie_shuffle and weight_decay, so the presets' defaults
# (the amazon preset's "auto" and 1) never decide an arm; refit is off unless
# an arm sets it.
# shellcheck shell=bash
T4R_ARMS='
robust|"time_features": "robust", "training": "all_positions", "tie_shuffle": false, "weight_decay": 0|robust (all_positions)|notime official
notime|"is_time": false, "training": "all_positions", "tie_shuffle": false, "weight_decay": 0|is_time=false (all_positions)|
official|"time_features": "official", "tie_shuffle": false, "weight_decay": 0|official (prefixes)|notime notime_pp
notime_pp|"is_time": false, "tie_shuffle": false, "weight_decay": 0|is_time=false (prefixes)|
robust_ts|"time_features": "robust", "training": "all_positions", "tie_shuffle": true, "weight_decay": 0|robust (all_positions), tie_shuffle|robust notime_ts
notime_ts|"is_time": false, "training": "all_positions", "tie_shuffle": true, "weight_decay": 0|is_time=false (all_positions), tie_shuffle|notime
official_ts|"time_features": "official", "tie_shuffle": true, "weight_decay": 0|official (prefixes), tie_shuffle|official
offdrop5_ts|"time_features": "official", "tie_shuffle": true, "dropout_prob": 0.5, "weight_decay": 0|official (prefixes), tie_shuffle, dropout 0.5|official_ts
offnl1_ts|"time_features": "official", "tie_shuffle": true, "num_layers": 1, "weight_decay": 0|official (prefixes), tie_shuffle, 1 layer|official_ts
offbs512_ts|"time_features": "official", "tie_shuffle": true, "batch_size": 512, "weight_decay": 0|official (prefixes), tie_shuffle, batch 512|official_ts
offwd01_ts|"time_features": "official", "tie_shuffle": true, "weight_decay": 0.1|official (prefixes), tie_shuffle, weight_decay 0.1|official_ts
offwd1_ts|"time_features": "official", "tie_shuffle": true, "weight_decay": 1|official (prefixes), tie_shuffle, weight_decay 1|official_ts
offlrd_ts|"time_features": "official", "tie_shuffle": true, "lr_decay": 0.5, "lr_decay_patience": 2, "weight_decay": 0|official (prefixes), tie_shuffle, lr_decay 0.5 (patience 2)|official_ts
offema_ts|"time_features": "official", "tie_shuffle": true, "ema_decay": 0.999, "weight_decay": 0|official (prefixes), tie_shuffle, ema_decay 0.999|official_ts
offwd1ema_ts|"time_features": "official", "tie_shuffle": true, "ema_decay": 0.999, "weight_decay": 1|official (prefixes), tie_shuffle, weight_decay 1, ema_decay 0.999|offwd1_ts offema_ts
offls_ts|"time_features": "official", "tie_shuffle": true, "label_smoothing": 0.1, "weight_decay": 0|official (prefixes), tie_shuffle, label_smoothing 0.1|official_ts
offtt_ts|"time_features": "official", "tie_shuffle": true, "tie_targets": true, "weight_decay": 0|official (prefixes), tie_shuffle, tie_targets|official_ts
offrf_ts|"time_features": "official", "tie_shuffle": true, "refit": true, "weight_decay": 0|official (prefixes), tie_shuffle, refit|official_ts
offwd1rf_ts|"time_features": "official", "tie_shuffle": true, "refit": true, "weight_decay": 1|official (prefixes), tie_shuffle, weight_decay 1, refit|offwd1_ts offrf_ts
offwd1rf|"time_features": "official", "tie_shuffle": false, "refit": true, "weight_decay": 1|official (prefixes), ties kept, weight_decay 1, refit|offwd1rf_ts
offwd1rf_auto|"time_features": "official", "tie_shuffle": "auto", "refit": true|amazon preset default (tie_shuffle auto; weight_decay from the preset: 1, and 0 as a third trial when a consistent order is kept; refit)|offwd1rf_ts
offrf|"time_features": "official", "tie_shuffle": false, "refit": true, "weight_decay": 0|official (prefixes), ties kept, refit (the published training with refit)|offwd1rf
'

# column $2 of arm $1; status 1 for an unknown arm
arm_field() { awk -F'|' -v a="$1" -v c="$2" '$1 == a { print $c; f = 1 } END { exit !f }' <<<"$T4R_ARMS"; }
arm_known() { arm_field "$1" 1 >/dev/null; }
arm_opts() { arm_field "$1" 2; }
arm_label() { arm_field "$1" 3 || echo "$1"; }
# every arm, in the table's order
arm_names() { awk -F'|' 'NF > 1 { print $1 }' <<<"$T4R_ARMS"; }
# "a:b" for every comparison, in the table's order
arm_pairs() { awk -F'|' 'NF > 1 { n = split($4, b, " "); for (i = 1; i <= n; i++) print $1 ":" b[i] }' <<<"$T4R_ARMS"; }
