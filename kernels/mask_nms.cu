// Greedy NMS over a precomputed IoU matrix, in one block, with no host round trip.
//
// Order: descending score, ties by lower index (a stable sort). Candidate j is suppressed when
// iou(i, j) > threshold for an earlier kept i. Steps: (1) each thread ranks its candidates by counting
// those ahead of them; (2) all threads build the "suppresses" bit matrix in sorted order (upper
// triangle only); (3) one warp walks the sorted list and ORs the rows of kept candidates into a
// "removed" bitset in shared memory: the sequential part is n steps of a few word operations.

// iou: (n, n) float32; scores: (n,) float32, finite; order: (n,) int32 scratch; keep: (n,) bytes out
// (torch.bool). The (n, words) u64 bit matrix, words = ceil(n / 64), lives in shared memory when
// over_global is null (dynamic shared memory: (1 + n) * words * 8 bytes), else in over_global (words * 8).
// Grid: 1 block.
extern "C" __global__ void nms_from_iou(const float* __restrict__ iou, const float* __restrict__ scores, int n,
                                        float threshold, int* __restrict__ order,
                                        unsigned long long* over_global, unsigned char* __restrict__ keep) {
    extern __shared__ unsigned long long removed[];
    const int words = (n + 63) / 64;
    // Shared memory when it fits: the sequential step below reads one row per kept candidate.
    unsigned long long* over = over_global ? over_global : removed + words;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float s = scores[i];
        int rank = 0;
        for (int j = 0; j < n; ++j) {
            const float t = scores[j];
            rank += (t > s) || (t == s && j < i);
        }
        order[rank] = i;
    }
    for (int w = threadIdx.x; w < words; w += blockDim.x) removed[w] = 0ull;
    __syncthreads();  // also publishes order[] (global writes of this block)
    for (int cell = threadIdx.x; cell < n * words; cell += blockDim.x) {
        const int r = cell / words, w = cell % words;
        const float* iou_row = iou + (long long)order[r] * n;
        unsigned long long bits = 0ull;
        for (int b = 0; b < 64; ++b) {
            const int c = w * 64 + b;
            if (c > r && c < n && iou_row[order[c]] > threshold) bits |= 1ull << b;
        }
        over[cell] = bits;
    }
    __syncthreads();
    if (threadIdx.x >= 32) return;
    const int lane = threadIdx.x;
    for (int r = 0; r < n; ++r) {
        const bool kept = !((removed[r / 64] >> (r % 64)) & 1ull);
        __syncwarp();  // every lane has read the word before any lane updates it
        if (lane == 0) keep[order[r]] = kept;
        if (kept) {
            for (int w = r / 64 + lane; w < words; w += 32) removed[w] |= over[(long long)r * words + w];
        }
        __syncwarp();
    }
}
