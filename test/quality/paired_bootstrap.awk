# paired_bootstrap.awk - paired bootstrap over users of the difference of a
# per-user metric between two arms (issue 12 part 3).
#
#   awk -v B=2000 -v seed=12345 -f test/quality/paired_bootstrap.awk FILE
#
# FILE: one line per user, "user<TAB>a<TAB>b" (a, b: the user's metric in
# arm A and arm B, e.g. test NDCG@10 or its mean over seeds).  Resamples the
# users with replacement B times (the same n users per resample) and prints
# one line
#   n=<users> mean_a=<> mean_b=<> diff=<mean(a - b)> lo=<> hi=<> p_le0=<> B=<> seed=<>
# lo / hi: the 2.5 % and 97.5 % percentiles of the resampled mean
# differences (the ceil(0.025 B)-th and ceil(0.975 B)-th smallest),
# p_le0: the fraction of resamples with a difference <= 0 (one-sided).
# Random numbers: the Park-Miller minimal standard generator in double
# arithmetic (exact in every awk, as test/quality/gen_synth.awk), so the same
# seed gives the same interval with mawk and gawk.
function rnd() { rs = (rs * 16807) % 2147483647; return rs / 2147483647 }
BEGIN { FS = "\t"; if (B == "") B = 2000; if (seed == "") seed = 12345; rs = seed % 2147483646 + 1 }
NF >= 3 { n++; d[n] = $2 - $3; sa += $2; sb += $3 }
END {
    if (n == 0) { print "n=0"; exit 1 }
    for (b = 1; b <= B; b++) {
        s = 0
        for (i = 1; i <= n; i++) s += d[int(rnd() * n) + 1]
        m[b] = s / n
        if (m[b] <= 0) le0++
    }
    # insertion sort of the B means (B is small)
    for (i = 2; i <= B; i++) {
        v = m[i]; j = i - 1
        while (j >= 1 && m[j] > v) { m[j + 1] = m[j]; j-- }
        m[j + 1] = v
    }
    lo = int(0.025 * B); if (lo < 0.025 * B) lo++; if (lo < 1) lo = 1
    hi = int(0.975 * B); if (hi < 0.975 * B) hi++
    printf "n=%d mean_a=%.6f mean_b=%.6f diff=%.6f lo=%.6f hi=%.6f p_le0=%.4f B=%d seed=%d\n",
           n, sa / n, sb / n, (sa - sb) / n, m[lo], m[hi], le0 / B, B, seed
}
