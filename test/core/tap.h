/*
 * tap.h - the header-only helpers of the C tests (test/core, test/cuda) and
 * of the core benchmarks that need random data (test/bench):
 *   tap_ok(cond, fmt, ...)   prints "ok N - desc" / "not ok N - desc"
 *   tap_diag(fmt, ...)       prints "# ..."
 *   return tap_done();       prints the plan "1..N", returns 0 if all passed
 *   tap_rng_u64(), urand(), nrand()
 *                            a small deterministic generator for test data
 *                            (xorshift64 with shifts 13, 7, 17), independent
 *                            of the core's t4r_rng so that a change there does
 *                            not move the tests' inputs.  Every file starts it
 *                            from its own state: #define TAP_RNG_SEED before
 *                            including this header.
 */
#ifndef T4R_TAP_H
#define T4R_TAP_H
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static int	tap_n_ = 0;
static int	tap_failed_ = 0;

static inline int tap_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline int
tap_ok(int cond, const char *fmt, ...)
{
	va_list		ap;

	tap_n_++;
	if (!cond)
		tap_failed_++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n_);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

static inline void
tap_diag(const char *fmt, ...)
{
	va_list		ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n_);
	if (tap_failed_)
		printf("# %d of %d tests failed\n", tap_failed_, tap_n_);
	fflush(stdout);
	return tap_failed_ ? 1 : 0;
}

#ifndef TAP_RNG_SEED
#define TAP_RNG_SEED 0x9E3779B97F4A7C15ULL
#endif
static uint64_t tap_rng_state = TAP_RNG_SEED;

/* the next 64 random bits */
static inline uint64_t
tap_rng_u64(void)
{
	tap_rng_state ^= tap_rng_state << 13;
	tap_rng_state ^= tap_rng_state >> 7;
	tap_rng_state ^= tap_rng_state << 17;
	return tap_rng_state;
}

/* uniform in [0, 1), 53 random bits */
static inline double
urand(void)
{
	return (tap_rng_u64() >> 11) * (1.0 / 9007199254740992.0);
}

/* standard normal (Box-Muller, one of the pair) */
static inline double
nrand(void)
{
	double		u1 = urand() + 1e-12,
				u2 = urand();

	return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}
#endif
