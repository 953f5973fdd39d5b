# gen_synth.awk - deterministic ML-1M-sized synthetic interactions with a
# planted sequential + temporal signal.  Writes CSV user_id,item_id,ts
# (header line, sorted by user then time) to stdout.
#
#   awk -v seed=2020 -f test/quality/gen_synth.awk > /tmp/synth.csv
#   variables: seed (2020), users (6040), items (3706), noise (0.15)
#
# Sizes: 6,040 users x 3,706 items; user lengths 20 + LogNormal(median 77,
# sigma 1.137) clipped at 2,314 (ML-1M: min 20, median 96, mean 165.6,
# max 2,314), about 1.0 M interactions; timestamps from 2000-05-01 over about
# 3 years (each user's first event in the first 1.5 years, all events before 2003-05-01).
# Signal: the items form chains of 17 (218 chains).  After a short gap
# (1-10 minutes, probability 0.7) the user moves to the next item of the
# current chain; after a long gap (hours to days) to the same position of
# the sister chain (chain + 109); with probability `noise` the item is a
# random popular one (Zipf-like).  So the next item depends on the last item
# AND on the time gap: an order-only model can at best split its bet.
# Random numbers: Park-Miller minimal standard generator in double
# arithmetic (exact in every awk), so the output is the same with mawk and
# gawk for the same seed.
function rnd() { rs = (rs * 16807) % 2147483647; return rs / 2147483647 }
function gauss(   a, b) {
    a = rnd(); if (a < 1e-12) a = 1e-12
    b = rnd()
    return sqrt(-2 * log(a)) * cos(6.283185307179586 * b)
}
BEGIN {
    if (seed == "") seed = 2020
    if (users == "") users = 6040
    if (items == "") items = 3706
    if (noise == "") noise = 0.15
    rs = (seed % 2147483646) + 1
    for (w = 0; w < 10; w++) rnd()
    clen = 17
    nchain = int(items / clen)            # 218 chains; items beyond are noise-only
    t0 = 957139200                        # 2000-05-01 00:00:00 UTC
    year = 31536000
    print "user_id,item_id,ts"
    for (u = 1; u <= users; u++) {
        n = 20 + int(exp(log(77) + 1.137 * gauss()))
        if (n > 2314) n = 2314
        start = t0 + int(rnd() * 1.5 * year)
        span = (t0 + 3 * year) - start
        # span of this user: a fraction of what is left, at least 30 days
        span = 2592000 + rnd() * (span - 2592000)
        # long gaps fill the span: mean long gap = span / (0.3 n), >= 2 h
        lmean = span / (0.3 * n); if (lmean < 7200) lmean = 7200
        c = int(rnd() * nchain); p = int(rnd() * clen)
        # first pass: gaps (kind 1 = short, 2 = long) and items
        ssum = 0; lsum = 0
        for (k = 0; k < n; k++) {
            if (k > 0) {
                if (rnd() < 0.7) {        # short gap: next item of the chain
                    gap[k] = 60 + int(rnd() * 540); kind[k] = 1; ssum += gap[k]
                    p = (p + 1) % clen
                } else {                  # long gap: sister chain
                    gap[k] = 3600 + rnd() * 2 * lmean; kind[k] = 2; lsum += gap[k]
                    c = (c + int(nchain / 2)) % nchain
                }
            }
            if (rnd() < noise)
                it[k] = 1 + int(items * rnd() ^ 3)
            else
                it[k] = 1 + c * clen + p
        }
        # long gaps shrunk (never below 1 h) when the user would pass its span
        f = 1
        if (lsum > 0 && ssum + lsum > span) f = (span - ssum) / lsum
        t = start
        for (k = 0; k < n; k++) {
            if (k > 0) {
                if (kind[k] == 1) t += gap[k]
                else { g = gap[k] * f; if (g < 3600) g = 3600; t += int(g) }
            }
            print u "," it[k] "," t
        }
    }
}
