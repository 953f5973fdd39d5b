/*
 * mathfn.h - the scalar maths of the model, written once for the float core,
 * the double core (-DT4R_DOUBLE, used by the finite-difference checks) and
 * the CUDA kernels (src/cuda/ops/ and its CPU emulation).
 *
 * Every function is T4R_FN: __host__ __device__ under nvcc, static inline
 * elsewhere.  t4r_real is float, or double in the double build; the
 * functions on `float` are float whatever the build.
 *
 * Where the code computes one function in more than one way (a branchy
 * reference, vectorisable forms with selects, the CUDA kernels' float libm
 * form), each way is here once, under its own name: they round differently
 * at a few inputs, and every result of the project (golden case, parity,
 * the trained weights) is tied to the way its site uses.
 */
#ifndef T4R_MATHFN_H
#define T4R_MATHFN_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "tim4rec.h"

#ifdef __CUDACC__
#define T4R_FN static inline __host__ __device__
#else
#define T4R_FN static inline
#endif

/* ---------------- counter-based hash (dropout) ----------------
 * splitmix64 (Steele, Lea, Flood): the step adds the golden-ratio constant,
 * the finaliser mixes.  t4r_hash64 keys a stream by (key, a, b, c); the
 * dropout mask of (seed, step, sample, site) draws element i from 32 bits
 * of splitmix64 at base + (i & ~1) * golden, the low half for even i, the
 * high half for odd i (so masks do not depend on threads or batching). */
#define T4R_GOLDEN64 0x9E3779B97F4A7C15ULL

T4R_FN uint64_t
t4r_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

T4R_FN uint64_t
t4r_splitmix64(uint64_t *x)
{
	return t4r_mix64(*x += T4R_GOLDEN64);
}

/* a well-mixed 64-bit value from a key and three counters */
T4R_FN uint64_t
t4r_hash64(uint64_t key, uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t	x = key ^ 0x243F6A8885A308D3ULL;

	(void) t4r_splitmix64(&x);
	x ^= a * T4R_GOLDEN64;
	(void) t4r_splitmix64(&x);
	x ^= b * 0xC2B2AE3D27D4EB4FULL;
	(void) t4r_splitmix64(&x);
	x ^= c * 0x165667B19E3779F9ULL;
	return t4r_splitmix64(&x);
}

/* the 32 uniform bits of element i of the mask keyed base = t4r_hash64(seed,
 * step, sample, site); dropped when below p * 2^32 */
T4R_FN uint64_t
t4r_dropout_bits(uint64_t base, uint64_t i)
{
	uint64_t	x = base + (i & ~1ULL) * T4R_GOLDEN64;
	uint64_t	z = t4r_splitmix64(&x);

	return (i & 1) ? (z >> 32) : (z & 0xffffffffULL);
}

/* ---------------- reference activations (t4r_real) ---------------- */
/* hardswish(x) = x * min(max(x + 3, 0), 6) / 6 */
T4R_FN t4r_real
t4r_hardswish(t4r_real x)
{
	t4r_real	r = x + 3;

	if (r <= 0)
		return 0;
	if (r >= 6)
		return x;
	return x * r / 6;
}

/* derivative as PyTorch's hardswish_backward: 0 for x < -3, 1 for x > 3,
 * (2x + 3)/6 in between (x == -3 gives 0, x == 3 gives 1.5) */
T4R_FN t4r_real
t4r_dhardswish(t4r_real x)
{
	if (x < -3)
		return 0;
	if (x <= 3)
		return (2 * x + 3) / 6;
	return 1;
}

/* sigmoid through a double exp */
T4R_FN t4r_real
t4r_sigmoid(t4r_real x)
{
	return (t4r_real) (1 / (1 + exp(-(double) x)));
}

T4R_FN t4r_real
t4r_silu(t4r_real x)
{
	return x * t4r_sigmoid(x);
}

T4R_FN t4r_real
t4r_dsilu(t4r_real x)
{
	t4r_real	s = t4r_sigmoid(x);

	return s * (1 + x * (1 - s));
}

/* softplus with the official threshold: x for x > 20 */
T4R_FN t4r_real
t4r_softplus(t4r_real x)
{
	if (x > 20)
		return x;
	return (t4r_real) log1p(exp((double) x));
}

/* d softplus / dx = sigmoid(x) (1 above the threshold) */
T4R_FN t4r_real
t4r_dsoftplus(t4r_real x)
{
	if (x > 20)
		return 1;
	return t4r_sigmoid(x);
}

/* ---------------- float libm forms (the CUDA kernels) ---------------- */
T4R_FN float
t4r_sigmoid_f32(float x)
{
	return 1.0f / (1.0f + expf(-x));
}

T4R_FN float
t4r_softplus_f32(float x)
{
	if (x > 20)
		return x;
	return log1pf(expf(x));
}

T4R_FN float
t4r_dsoftplus_f32(float x)
{
	return x > 20 ? 1.0f : t4r_sigmoid_f32(x);
}

/* ---------------- vectorisable float forms (the CPU float core) ----------------
 * No calls and no float compares in the result path (integer selects on
 * the bits), so that loops over them vectorise. */

/* order-preserving integer key of a float (signed compare == float compare) */
T4R_FN int32_t
t4r_fkey(float x)
{
	int32_t		b;

	memcpy(&b, &x, 4);
	return b ^ ((b >> 31) & 0x7fffffff);
}

/* mask all ones -> a, 0 -> b */
T4R_FN float
t4r_fsel(int32_t mask, float a, float b)
{
	int32_t		ab,
				bb;

	memcpy(&ab, &a, 4);
	memcpy(&bb, &b, 4);
	ab = (ab & mask) | (bb & ~mask);
	memcpy(&a, &ab, 4);
	return a;
}

/*
 * exp(-|m|) with |m| first clamped on its bits to the float `clamp` (at
 * most 0x42AE999A = 87.3, so that the result stays a normal float):
 * -|m| = n ln2 + r with |r| <= ln2/2 (ln2 in two parts), exp(r) by a
 * degree-7 polynomial (Cephes coefficients), 2^n built in the exponent
 * bits.  Relative error under 1e-7.
 */
T4R_FN float
t4r_fexpneg(float m, int32_t clamp)
{
	float		n,
				r,
				p,
				x;
	int32_t		ni,
				mb;

	memcpy(&mb, &m, 4);
	mb &= 0x7fffffff;
	mb = mb < clamp ? mb : clamp;
	memcpy(&x, &mb, 4);
	x = -x;
	n = x * 1.44269504088896341f + 12582912.0f;	/* 1.5 * 2^23: round */
	memcpy(&ni, &n, 4);
	ni -= 0x4B400000;
	n -= 12582912.0f;
	r = x - n * 0.693359375f;
	r = r + n * 2.12194440e-4f;
	p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	ni = (ni + 127) << 23;
	memcpy(&x, &ni, 4);
	return p * x;
}

/* sigmoid(a) from e = exp(-|a|): 1/(1+e) for a >= 0, e/(1+e) for a < 0,
 * selected on the sign bit */
T4R_FN float
t4r_fsigmoid_e(float a, float e)
{
	int32_t		ab,
				ib,
				nb,
				mask;
	float		inv = 1 / (1 + e);
	float		neg = e * inv;

	memcpy(&ab, &a, 4);
	mask = ab >> 31;
	memcpy(&ib, &inv, 4);
	memcpy(&nb, &neg, 4);
	ib = (nb & mask) | (ib & ~mask);
	memcpy(&inv, &ib, 4);
	return inv;
}

/* hardswish and its derivative (the conventions of t4r_hardswish /
 * t4r_dhardswish, thresholds on x, products by 1/6) with integer selects */
T4R_FN float
t4r_hardswish_sel(float x)
{
	int32_t		k = t4r_fkey(x);
	float		mid = x * (x + 3) * (1.0f / 6);
	int32_t		lo = -(k <= t4r_fkey(-3.0f));
	int32_t		hi = -(k >= t4r_fkey(3.0f));

	return t4r_fsel(lo, 0.0f, t4r_fsel(hi, x, mid));
}

T4R_FN float
t4r_dhardswish_sel(float x)
{
	int32_t		k = t4r_fkey(x);
	float		mid = (2 * x + 3) * (1.0f / 6);
	int32_t		lo = -(k < t4r_fkey(-3.0f));
	int32_t		hi = -(k > t4r_fkey(3.0f));

	return t4r_fsel(lo, 0.0f, t4r_fsel(hi, 1.0f, mid));
}

/* the time path's forms (timepath.c, both builds): thresholds on x + 3,
 * derivative x/3 + 1/2, float-compare selects (vectorised there under
 * no-trapping-math) */
T4R_FN t4r_real
t4r_hardswish_tp(t4r_real x)
{
	t4r_real	r = x + 3;
	t4r_real	v = x * r * (t4r_real) (1.0 / 6);

	v = r <= 0 ? 0 : v;
	return r >= 6 ? x : v;
}

T4R_FN t4r_real
t4r_dhardswish_tp(t4r_real x)
{
	t4r_real	v = x * (t4r_real) (1.0 / 3) + (t4r_real) 0.5;

	v = x < -3 ? 0 : v;
	return x > 3 ? 1 : v;
}

#endif							/* T4R_MATHFN_H */
