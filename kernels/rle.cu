// COCO run-length encoding of (n, h, w) masks, column-major, first run = background.
//
// A mask's counts are the differences of its "edges": 0, (0 again when the first pixel is set, giving
// the empty leading background run), every column-major index k where pixel k differs from pixel k-1,
// and h*w. One thread owns one column of one mask (a warp reads 32 neighbouring bytes per row):
//   rle_count_edges  -> edges per (mask, column); the host side takes an exclusive cumsum on device
//   rle_write_edges  -> each column writes its edges at its offset, in order
//   rle_edges_to_counts -> counts[i] = edges[i+1] - edges[i] (entries that straddle two masks unused)
// Only the counts (and each mask's start) are copied to the host.

__device__ __forceinline__ bool pixel(const unsigned char* mask, int w, int y, int x) {
    return mask[(long long)y * w + x] != 0;
}

// masks: (n, h, w) bytes (torch.bool storage); col_edges: (n, w) int32 out. Grid-stride over n*w columns.
extern "C" __global__ void rle_count_edges(const unsigned char* __restrict__ masks, int n, int h, int w,
                                           int* __restrict__ col_edges) {
    const long long columns = (long long)n * w;
    for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < columns;
         c += (long long)gridDim.x * blockDim.x) {
        const int x = (int)(c % w);
        const unsigned char* mask = masks + (c / w) * h * (long long)w;
        // The pixel before (0, x) in column-major order is the bottom of the previous column.
        bool prev = x == 0 ? pixel(mask, w, 0, 0) : pixel(mask, w, h - 1, x - 1);
        int edges = x == 0 ? 1 + prev : 0;  // leading 0 (twice when the first pixel is set)
        for (int y = x == 0 ? 1 : 0; y < h; ++y) {
            const bool v = pixel(mask, w, y, x);
            edges += v != prev;
            prev = v;
        }
        col_edges[c] = edges + (x == w - 1);  // the closing h*w
    }
}

// col_offsets: (n, w) int64, exclusive prefix sum of col_edges; edges: int32 out.
extern "C" __global__ void rle_write_edges(const unsigned char* __restrict__ masks, int n, int h, int w,
                                           const long long* __restrict__ col_offsets, int* __restrict__ edges) {
    const long long columns = (long long)n * w;
    for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < columns;
         c += (long long)gridDim.x * blockDim.x) {
        const int x = (int)(c % w);
        const unsigned char* mask = masks + (c / w) * h * (long long)w;
        int* out = edges + col_offsets[c];
        bool prev = x == 0 ? pixel(mask, w, 0, 0) : pixel(mask, w, h - 1, x - 1);
        if (x == 0) {
            *out++ = 0;
            if (prev) *out++ = 0;
        }
        const int column_start = x * h;
        for (int y = x == 0 ? 1 : 0; y < h; ++y) {
            const bool v = pixel(mask, w, y, x);
            if (v != prev) *out++ = column_start + y;
            prev = v;
        }
        if (x == w - 1) *out = h * w;
    }
}

// edges: (total,) int32; counts: (total,) int32 out, last entry unused.
extern "C" __global__ void rle_edges_to_counts(const int* __restrict__ edges, long long total,
                                               int* __restrict__ counts) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i + 1 < total;
         i += (long long)gridDim.x * blockDim.x)
        counts[i] = edges[i + 1] - edges[i];
}
