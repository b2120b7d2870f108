// FILM-QNN accelerator, Vivado/Vitis HLS path: top-level prototype.
// Static source, copied by filmqnn_hw.flows.hls.generate_hls next to the generated filmqnn_config.h.
#ifndef FILMQNN_TOP_H
#define FILMQNN_TOP_H

#include <ap_int.h>
#include <stdint.h>

#include "filmqnn_config.h"

typedef ap_uint<FQ_AXI_BITS> beat_t;

// Status codes (output register `status`): low byte = code, bits 31..8 = layer index.
#define FQ_OK 0
#define FQ_ERR_MAGIC 1       // no FQNNPROG magic at the `layers` address
#define FQ_ERR_VERSION 2     // program version / header or descriptor size not supported
#define FQ_ERR_CONFIG 3      // program built for another accelerator configuration
#define FQ_ERR_OP 4          // unknown op code in a descriptor
#define FQ_ERR_SHAPE 5       // a descriptor this kernel cannot run (e.g. bad lane count)

// Runs every descriptor of the layer program at byte address `layers` (relative to gmem).
void filmqnn_top(beat_t *gmem, ap_uint<64> layers, ap_uint<64> *cycles, ap_uint<32> *status);

#endif
