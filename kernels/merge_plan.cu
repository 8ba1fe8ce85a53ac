// Detection-track merge in one block: matches, new-object spawns with ids, keep-alive counters.
//
// Semantics are those of transformers' Sam3VideoModel association (_associate_det_trk, the max-object
// limit and the keep-alive part of _process_hotstart); sam3_ros/kernels/torch_ops.py:merge_plan is the
// definition, this is its device version. n and m are small (hundreds), so O(n*m) and O(n^2) loops
// spread over one block finish in microseconds and need no host round trip.

struct MergeConfig {
    float score_threshold;  // detections at or below take no part
    float assoc_iou;        // det <-> track match (keeps a track alive, blocks a spawn)
    float track_assoc_iou;  // a non-empty track below this with every detection is "unmatched"
    float new_object_score; // an unmatched detection spawns only at or above this score
    float high_conf_score;  // reconditioning: detection score ...
    float high_iou;         // ... and IoU with its best track
    long long init_keep_alive, max_keep_alive, min_keep_alive;
    int decrease_keep_alive_when_empty;
    long long max_objects;  // spawns beyond max_objects - m are dropped, lowest scores first
};

// Detection flags kept in shared memory between phases.
#define VALID 1
#define NEW 2  // would spawn, before the max-object limit

__device__ __forceinline__ float masked_iou(const float* iou, const long long* det_prompt,
                                            const long long* trk_prompt, int m, int d, int t) {
    // Detections and tracks of different prompts never match; no prompt arrays: one prompt for all.
    return !det_prompt || det_prompt[d] == trk_prompt[t] ? iou[(long long)d * m + t] : 0.0f;
}

// iou: (n, m) float32; det_scores (n,) float32; det_prompt (n,) / trk_prompt (m,) int64, or both null;
// trk_nonempty (m,) bool; keep_alive_in (m,) int64; next_id_in (1,) int64.
// Outputs: det_track (n,) int64, det_new_id (n,) int64, trk_matched / trk_unmatched (m,) bool,
// trk_recondition_det (m,) int64, keep_alive_out (m,) int64, next_id_out (1,) int64.
// Grid: 1 block; dynamic shared memory: n * (4 + 4 + 1 + 1) bytes.
extern "C" __global__ void merge_plan(const float* __restrict__ iou, const float* __restrict__ det_scores,
                                      const long long* __restrict__ det_prompt,
                                      const long long* __restrict__ trk_prompt,
                                      const unsigned char* __restrict__ trk_nonempty,
                                      const long long* __restrict__ keep_alive_in,
                                      const long long* __restrict__ next_id_in, int n, int m, MergeConfig cfg,
                                      long long* __restrict__ det_track, long long* __restrict__ det_new_id,
                                      unsigned char* __restrict__ trk_matched,
                                      unsigned char* __restrict__ trk_unmatched,
                                      long long* __restrict__ trk_recondition_det,
                                      long long* __restrict__ keep_alive_out, long long* __restrict__ next_id_out) {
    extern __shared__ unsigned char smem[];
    float* best_iou = (float*)smem;
    int* best_trk = (int*)(best_iou + n);
    unsigned char* flags = (unsigned char*)(best_trk + n);
    unsigned char* spawn = flags + n;  // separate from flags: phase 2 writes it while others read flags
    __shared__ int spawned;
    if (threadIdx.x == 0) spawned = 0;

    // Phase 1, per detection: best track (first of equal maxima), match, would-spawn.
    for (int d = threadIdx.x; d < n; d += blockDim.x) {
        const float s = det_scores[d];
        const bool valid = s > cfg.score_threshold;
        float best = 0.0f;
        int arg = 0;
        for (int t = 0; t < m; ++t) {
            const float v = masked_iou(iou, det_prompt, trk_prompt, m, d, t);
            if (t == 0 || v > best) best = v, arg = t;
        }
        const bool matched = valid && m > 0 && best >= cfg.assoc_iou;
        // With no tracks at all, the reference spawns every valid detection (new_det_thresh is not applied).
        const bool is_new = valid && (m == 0 || (s >= cfg.new_object_score && !matched));
        best_iou[d] = best;
        best_trk[d] = arg;
        flags[d] = (valid ? VALID : 0) | (is_new ? NEW : 0);
        det_track[d] = matched ? arg : -1;
    }
    __syncthreads();

    // Phase 2a, per detection: max-object limit keeps the best-scoring spawns (ties: lower index).
    const long long room = cfg.max_objects - m;
    for (int d = threadIdx.x; d < n; d += blockDim.x) {
        spawn[d] = 0;
        if (!(flags[d] & NEW)) continue;
        const float s = det_scores[d];
        long long rank = 0;
        for (int e = 0; e < n; ++e) {
            const float t = det_scores[e];
            rank += (flags[e] & NEW) && (t > s || (t == s && e < d));
        }
        if (rank < room) {
            spawn[d] = 1;
            atomicAdd(&spawned, 1);
        }
    }
    // Phase 2b, per track: match flags, reconditioning target, keep-alive update.
    for (int t = threadIdx.x; t < m; t += blockDim.x) {
        bool matched = false, confirmed = false;
        long long recondition = -1;
        for (int d = 0; d < n; ++d) {
            if (!(flags[d] & VALID)) continue;
            const float v = masked_iou(iou, det_prompt, trk_prompt, m, d, t);
            matched |= v >= cfg.assoc_iou;
            confirmed |= v >= cfg.track_assoc_iou;
            if (!(flags[d] & NEW) && det_scores[d] >= cfg.high_conf_score && best_iou[d] >= cfg.high_iou &&
                best_trk[d] == t)
                recondition = d;  // the reference's dict keeps the last detection written
        }
        const bool nonempty = trk_nonempty[t] != 0;
        const bool unmatched = nonempty && !confirmed;
        long long alive = keep_alive_in[t];
        if (matched) alive = min(cfg.max_keep_alive, alive + 1);
        if (unmatched) alive = max(cfg.min_keep_alive, alive - 1);
        if (cfg.decrease_keep_alive_when_empty && !nonempty) alive = max(cfg.min_keep_alive, alive - 1);
        trk_matched[t] = matched;
        trk_unmatched[t] = unmatched;
        trk_recondition_det[t] = recondition;
        keep_alive_out[t] = alive;
    }
    __syncthreads();

    // Phase 3, per detection: ids in detection order, continuing the run's counter.
    const long long next_id = next_id_in[0];
    for (int d = threadIdx.x; d < n; d += blockDim.x) {
        long long id = -1;
        if (spawn[d]) {
            id = next_id;
            for (int e = 0; e < d; ++e) id += spawn[e];
        }
        det_new_id[d] = id;
    }
    if (threadIdx.x == 0) next_id_out[0] = next_id + spawned;
}
