// CPU emulation of the CUDA execution model, to run kernels/*.cu unchanged on machines without a GPU.
//
// A test double for the GPU (not for our code): one real thread per CUDA thread of a block, running
// the blocks one after another; __syncthreads and __syncwarp are barriers, __ballot_sync votes through the
// warp's slots, atomics are std::atomic_ref. __shared__ variables become function statics (shared by
// the block; blocks do not overlap), dynamic shared memory is a per-launch buffer filled with 0xA5 so
// that reading it before writing shows. tests/test_kernels_gpu.py rewrites `extern __shared__` and
// generates one C entry point per kernel that unpacks a cuLaunchKernel-style argument array.
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace emu {
struct Warp {
    std::barrier<> sync{32};
    unsigned votes[32];
};
struct Block {
    std::barrier<>* sync;
    std::vector<Warp>* warps;
    unsigned char* dynamic_shared;
};
inline thread_local dim3 thread_idx, block_idx;
inline thread_local unsigned linear_tid;
inline thread_local Block* block;
inline dim3 block_dim, grid_dim;

inline Warp& warp() { return (*block->warps)[linear_tid / 32]; }

template <class... A, std::size_t... I>
void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

struct BlockState {
    explicit BlockState(unsigned threads) : sync(threads), warps((threads + 31) / 32) {}
    std::barrier<> sync;
    std::vector<Warp> warps;
};

template <class... A>
void launch(void (*kernel)(A...), unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
            std::size_t shared_bytes, void** args) {
    grid_dim = {gx, gy, gz};
    block_dim = {bx, by, bz};
    const unsigned threads = bx * by * bz, blocks = gx * gy * gz;
    std::unique_ptr<unsigned long long[]> shared(new unsigned long long[shared_bytes / 8 + 1]);
    auto poison = [&]() noexcept { std::memset(shared.get(), 0xA5, shared_bytes); };
    poison();
    // One thread per CUDA thread for the whole launch; they run the blocks in turn, and the barrier
    // between blocks re-poisons dynamic shared memory. A thread that returns from the kernel drops out
    // of its block's barriers, as an exited CUDA thread no longer counts at __syncthreads.
    std::barrier between(threads, poison);
    std::vector<std::unique_ptr<BlockState>> states;
    for (unsigned b = 0; b < blocks; ++b) states.push_back(std::make_unique<BlockState>(threads));
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            linear_tid = t;
            thread_idx = {t % bx, (t / bx) % by, t / (bx * by)};
            for (unsigned b = 0; b < blocks; ++b) {
                Block blk{&states[b]->sync, &states[b]->warps, reinterpret_cast<unsigned char*>(shared.get())};
                block = &blk;
                block_idx = {b % gx, (b / gx) % gy, b / (gx * gy)};
                call(kernel, args, std::index_sequence_for<A...>{});
                states[b]->sync.arrive_and_drop();
                states[b]->warps[t / 32].sync.arrive_and_drop();
                between.arrive_and_wait();
            }
        });
    for (auto& th : pool) th.join();
}
}  // namespace emu

#define threadIdx (emu::thread_idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

using std::max;
using std::min;

inline void __syncthreads() { emu::block->sync->arrive_and_wait(); }
inline void __syncwarp() { emu::warp().sync.arrive_and_wait(); }
inline unsigned __ballot_sync(unsigned, bool predicate) {
    emu::Warp& w = emu::warp();
    w.votes[emu::linear_tid % 32] = predicate;
    w.sync.arrive_and_wait();
    unsigned ballot = 0;
    for (unsigned lane = 0; lane < 32; ++lane) ballot |= (w.votes[lane] ? 1u : 0u) << lane;
    w.sync.arrive_and_wait();  // nobody votes again before every lane has read
    return ballot;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int atomicAdd(int* address, int value) { return std::atomic_ref<int>(*address).fetch_add(value); }
