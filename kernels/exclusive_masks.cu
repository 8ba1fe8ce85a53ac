// Per-pixel non-overlap of the output masks within groups (one group per concept).
//
// Semantics are those of transformers' Sam3VideoProcessor._apply_object_wise_non_overlapping_constraints
// (background 0); sam3_ros/kernels/torch_ops.py:exclusive_masks is the definition, this is its device
// version. Within a group, a pixel covered by several masks stays with the mask of the highest score (ties:
// lower index), and only if that score is positive. Two launches: exclusive_order ranks the objects once,
// then exclusive_masks walks them in that order at every pixel, so each pixel reads each mask once.

// scores: (n,) float32, finite; groups: (n,) int64; order: (n,) int32 out, the objects sorted by group
// (ascending), then score (descending), then index. Grid: 1 block.
extern "C" __global__ void exclusive_order(const float* __restrict__ scores, const long long* __restrict__ groups,
                                           int n, int* __restrict__ order) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float s = scores[i];
        const long long g = groups[i];
        int rank = 0;
        for (int j = 0; j < n; ++j) {
            const long long h = groups[j];
            const float t = scores[j];
            rank += h < g || (h == g && (t > s || (t == s && j < i)));
        }
        order[rank] = i;
    }
}

// masks: (n, hw) bytes (torch.bool); order from exclusive_order; out: (n, hw) bytes. Grid-stride over pixels.
extern "C" __global__ void exclusive_masks(const unsigned char* __restrict__ masks, const float* __restrict__ scores,
                                           const long long* __restrict__ groups, const int* __restrict__ order,
                                           int n, long long hw, unsigned char* __restrict__ out) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < hw; p += stride) {
        bool claimed = false;  // by a higher-ranked mask of the current group
        long long group = 0;
        for (int k = 0; k < n; ++k) {
            const int i = order[k];  // the same for every thread: a broadcast read
            const long long g = groups[i];
            if (k == 0 || g != group) {
                claimed = false;
                group = g;
            }
            const bool covered = masks[(long long)i * hw + p] != 0;
            out[(long long)i * hw + p] = covered && !claimed && scores[i] > 0.0f;
            claimed = claimed || covered;
        }
    }
}
