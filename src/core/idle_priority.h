// Background work that must not slow the computation it runs beside.
#pragma once

namespace lowbit {

// Puts the calling thread in Linux's SCHED_IDLE class: it runs on a core only when no
// other thread wants it. For the quantization checkpoint writer (pipeline/
// quantize_checkpoint.h): at normal priority it preempted one of the two workers of a
// parallel_for for a time slice while the other waited at the join, so each second of
// its CPU cost about two of the pool's. Whatever it has left runs when the pipeline
// joins it. False (and nothing changed) where the class does not exist.
bool enter_idle_priority();

}  // namespace lowbit
