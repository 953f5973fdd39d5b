/*
 * cuda_emu.h - a tiny CPU emulator of the CUDA subset used by
 * src/cuda/model.cu, for checking the kernels' logic on a machine without
 * a GPU (test/cuda/emu/README.md).  Every CUDA thread is a ucontext fiber;
 * blocks run one after another; __syncthreads / __syncwarp / shuffles are
 * barriers over the block's / warp's threads that have not exited.  cuBLAS
 * calls map to CBLAS (column-major).  Not a performance tool.
 */
#ifndef T4R_CUDA_EMU_H
#define T4R_CUDA_EMU_H
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <functional>
#include <cblas.h>

struct dim3
{
	unsigned	x, y, z;
	dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

struct EmuThread
{
	dim3		t;
};
extern EmuThread *emu_cur;
extern dim3 emu_blk, emu_bdim, emu_gdim;
extern char *emu_dyn_shared;

#define threadIdx (emu_cur->t)
#define blockIdx emu_blk
#define blockDim emu_bdim
#define gridDim emu_gdim
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

void		emu_barrier_block(void);
void		emu_barrier_warp(void);
double		emu_exchange(double v, int src_lane);	/* value of lane src_lane */

#define __syncthreads() emu_barrier_block()
#define __syncwarp() emu_barrier_warp()
template <typename T> static inline T
__shfl_xor_sync(unsigned mask, T v, int o)
{
	(void) mask;
	return (T) emu_exchange((double) v, (int) ((threadIdx.x & 31) ^ o));
}
static inline float
atomicAdd(float *p, float v)
{
	float		o = *p;

	*p = o + v;
	return o;
}

/* sync == 0: the kernel has no barrier, threads run as plain calls */
void		emu_launch(dim3 g, dim3 b, size_t shm, const std::function<void()> &body, int sync);

/* runtime */
typedef int cudaError_t;
enum
{
	cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorInsufficientDriver = 35
};
enum cudaMemcpyKind
{
	cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice
};
static inline const char *cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }
static inline cudaError_t cudaMalloc(void **p, size_t n) { *p = malloc(n ? n : 1); return *p ? cudaSuccess : cudaErrorMemoryAllocation; }
static inline cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
static inline cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k) { (void) k; memcpy(d, s, n); return cudaSuccess; }
static inline cudaError_t cudaMemset(void *d, int v, size_t n) { memset(d, v, n); return cudaSuccess; }
static inline cudaError_t cudaMemsetAsync(void *d, int v, size_t n) { memset(d, v, n); return cudaSuccess; }
static inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
static inline cudaError_t cudaGetLastError(void) { return cudaSuccess; }
static inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
static inline cudaError_t cudaDriverGetVersion(int *v) { *v = 13000; return cudaSuccess; }
static inline cudaError_t cudaRuntimeGetVersion(int *v) { *v = 13000; return cudaSuccess; }
static inline cudaError_t cudaMemGetInfo(size_t *f, size_t *t) { *f = 1; *t = 2; return cudaSuccess; }
/* device attributes: an H100's per-block shared memory limit (opt-in) */
#define EMU_SHARED_OPTIN 232448
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
static inline cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
static inline cudaError_t
cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev)
{
	(void) a;
	(void) dev;
	*v = EMU_SHARED_OPTIN;
	return cudaSuccess;
}
template <typename F> static inline cudaError_t
cudaFuncSetAttribute(F f, cudaFuncAttribute a, int v)
{
	(void) f;
	(void) a;
	return v <= EMU_SHARED_OPTIN ? cudaSuccess : 1;
}

/* cuBLAS */
typedef int cublasStatus_t;
typedef void *cublasHandle_t;
typedef int cublasOperation_t;
enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_ALLOC_FAILED = 3 };
enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_PEDANTIC_MATH = 2 };
static inline cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = (void *) 1; return 0; }
static inline cublasStatus_t cublasDestroy(cublasHandle_t h) { (void) h; return 0; }
static inline cublasStatus_t cublasSetMathMode(cublasHandle_t h, int m) { (void) h; (void) m; return 0; }
static inline cublasStatus_t
cublasSgemm(cublasHandle_t h, int ta, int tb, int m, int n, int k, const float *al,
			const float *A, int lda, const float *B, int ldb, const float *be, float *C, int ldc)
{
	(void) h;
	cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
				m, n, k, *al, A, lda, B, ldb, *be, C, ldc);
	return 0;
}
static inline cublasStatus_t
cublasSgemv(cublasHandle_t h, int ta, int m, int n, const float *al, const float *A, int lda,
			const float *x, int incx, const float *be, float *y, int incy)
{
	(void) h;
	cblas_sgemv(CblasColMajor, ta ? CblasTrans : CblasNoTrans, m, n, *al, A, lda, x, incx,
				*be, y, incy);
	return 0;
}
#endif
