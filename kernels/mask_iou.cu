// Mask IoU on bit-packed masks: pack once (ballot, 1 bit per pixel), then AND + popcount per pair.
//
// A 288x288 mask is 2592 32-bit words; 200 x 200 pairs are ~10^8 AND+POPC, a few tens of microseconds,
// against the N*M*H*W byte traffic of a broadcast AND/OR. Areas come from the packing pass.
// Result per pair: union > 0 ? inter / union : 0, in IEEE float32 (same bits as the torch reference).

#define PACK_WARPS 8  // warps per block in pack_masks
#define TILE 16       // output tile: TILE x TILE pairs per block, one pair per thread
#define CHUNK 64      // words of each mask staged in shared memory per step

// masks: (n, hw) bytes (torch.bool storage), row-major; bits: (n, words) with words = ceil(hw / 32);
// area: (n,) zeroed before the launch. Grid: (blocks_per_mask, n), block: 32 * PACK_WARPS threads.
extern "C" __global__ void pack_masks(const unsigned char* __restrict__ masks, unsigned int* __restrict__ bits,
                                      int* __restrict__ area, int hw, int words) {
    const int mask = blockIdx.y;
    const int lane = threadIdx.x & 31;
    const int warp = blockIdx.x * PACK_WARPS + (threadIdx.x >> 5);
    const int warps_per_mask = gridDim.x * PACK_WARPS;
    const unsigned char* src = masks + (long long)mask * hw;
    unsigned int* dst = bits + (long long)mask * words;
    int count = 0;
    for (int word = warp; word < words; word += warps_per_mask) {
        const int pixel = word * 32 + lane;
        const unsigned int set = __ballot_sync(0xffffffffu, pixel < hw && src[pixel] != 0);
        if (lane == 0) dst[word] = set;
        count += __popc(set);
    }
    // Every lane holds the same count: one atomic per warp.
    if (lane == 0 && count) atomicAdd(area + mask, count);
}

// a_bits: (n, words), b_bits: (m, words); iou: (n, m) float32.
// Grid: (ceil(m / TILE), ceil(n / TILE)), block: (TILE, TILE).
extern "C" __global__ void pair_iou(const unsigned int* __restrict__ a_bits, const unsigned int* __restrict__ b_bits,
                                    const int* __restrict__ a_area, const int* __restrict__ b_area,
                                    float* __restrict__ iou, int n, int m, int words) {
    // +1 word of padding: the threads of a warp read different rows of b_tile at the same column.
    __shared__ unsigned int a_tile[TILE][CHUNK + 1];
    __shared__ unsigned int b_tile[TILE][CHUNK + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * TILE + ty;  // index into a
    const int col = blockIdx.x * TILE + tx;  // index into b
    const int tid = ty * TILE + tx;
    int inter = 0;
    for (int base = 0; base < words; base += CHUNK) {
        for (int i = tid; i < TILE * CHUNK; i += TILE * TILE) {
            const int r = i / CHUNK, k = i % CHUNK, w = base + k;
            const int ar = blockIdx.y * TILE + r, br = blockIdx.x * TILE + r;
            a_tile[r][k] = (ar < n && w < words) ? a_bits[(long long)ar * words + w] : 0u;
            b_tile[r][k] = (br < m && w < words) ? b_bits[(long long)br * words + w] : 0u;
        }
        __syncthreads();
#pragma unroll 16
        for (int k = 0; k < CHUNK; ++k) inter += __popc(a_tile[ty][k] & b_tile[tx][k]);
        __syncthreads();
    }
    if (row < n && col < m) {
        const int uni = a_area[row] + b_area[col] - inter;
        iou[(long long)row * m + col] = uni > 0 ? (float)inter / (float)uni : 0.0f;
    }
}
