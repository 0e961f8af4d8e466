//! Reading a whole rb2 block in id order, a row group at a time: what compaction reads,
//! so a job holds one row group of each input instead of whole blocks.

use std::sync::Arc;

use async_trait::async_trait;
use parquet::DecodeResult;
use parquet::arrow::ProjectionMask;
use parquet::arrow::push_decoder::{ParquetPushDecoder, RowGroupSelection};
use uuid::Uuid;

use super::fetch::{FetchError, Fetcher, Footer};
use super::read::Assembler;
use crate::block::{EncodedTraces, TraceCursor};
use crate::error::{Error, Result};

/// Rows decoded at once: the assembler carries traces across batch ends. What a merge
/// holds per input besides the compressed row group is about this many rows decoded and
/// the traces they complete ([`crate::compactor::plan::DECODE_BYTES_PER_INPUT`]).
const BATCH_ROWS: usize = 4 * 1024;

/// Traces of one rb2 block in id order.
pub struct Rb2Cursor {
    fetcher: Fetcher,
    footer: Arc<Footer>,
    tenant: String,
    id: Uuid,
    next_rg: usize,
    decoder: Option<ParquetPushDecoder>,
    asm: Option<Assembler>,
}

impl Rb2Cursor {
    /// Over the block behind `fetcher`, whose footer is `footer`.
    pub fn new(fetcher: Fetcher, footer: Arc<Footer>, tenant: String, id: Uuid) -> Self {
        let asm = Assembler::new(footer.base_ns, footer.dedicated.clone());
        Rb2Cursor {
            fetcher,
            footer,
            tenant,
            id,
            next_rg: 0,
            decoder: None,
            asm: Some(asm),
        }
    }

    fn corrupt(&self, message: String) -> Error {
        crate::block::corrupt_data(&self.tenant, &self.id, message)
    }
}

#[async_trait]
impl TraceCursor for Rb2Cursor {
    async fn next_batch(&mut self) -> Result<Option<EncodedTraces>> {
        loop {
            if self.asm.is_none() {
                return Ok(None);
            }
            if self.decoder.is_none() {
                if self.next_rg >= self.footer.parquet().num_row_groups() {
                    let rest = self.asm.take().map(Assembler::finish).unwrap_or_default();
                    return Ok((!rest.is_empty()).then_some(rest));
                }
                let rg = self.next_rg;
                self.next_rg += 1;
                let dec = self
                    .footer
                    .decoder_with_batch(
                        ProjectionMask::all(),
                        vec![RowGroupSelection::new(rg, None)],
                        BATCH_ROWS,
                    )
                    .map_err(|m| self.corrupt(m))?;
                self.decoder = Some(dec);
            }
            let (Some(mut dec), Some(mut asm)) = (self.decoder.take(), self.asm.take()) else {
                continue;
            };
            // Decoding runs on the compaction thread (background priority); the decoder
            // and the assembler travel there and back.
            let (dec, asm, step) = crate::cpu::compaction_threads()
                .run(move || {
                    let step = decode_step(&mut dec, &mut asm);
                    (dec, asm, step)
                })
                .await?;
            self.decoder = Some(dec);
            self.asm = Some(asm);
            match step.map_err(|m| self.corrupt(m))? {
                Step::NeedsData(ranges) => {
                    let bytes = self
                        .fetcher
                        .get_ranges(&ranges)
                        .await
                        .map_err(|e| match e {
                            FetchError::Store(e) => e,
                            FetchError::Corrupt(m) => self.corrupt(m),
                        })?;
                    if let Some(dec) = self.decoder.as_mut() {
                        dec.push_ranges(ranges, bytes)
                            .map_err(|e| self.corrupt(e.to_string()))?;
                    }
                }
                Step::Traces(done) => return Ok(Some(done)),
                Step::Finished => self.decoder = None,
            }
        }
    }
}

/// Where one decoding step stopped.
enum Step {
    /// The decoder needs these byte ranges of the data object.
    NeedsData(Vec<std::ops::Range<u64>>),
    /// Traces completed by the rows decoded.
    Traces(EncodedTraces),
    /// The row group is decoded.
    Finished,
}

/// Decode rows until the decoder needs data, some traces are complete or the row group
/// ends. The Parquet decoder can panic on damaged pages: a damaged block, not a crash.
fn decode_step(dec: &mut ParquetPushDecoder, asm: &mut Assembler) -> Result<Step, String> {
    loop {
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dec.try_decode()))
            .map_err(|_| "the parquet reader failed on damaged data".to_owned())?;
        match step.map_err(|e| e.to_string())? {
            DecodeResult::NeedsData(ranges) => return Ok(Step::NeedsData(ranges)),
            DecodeResult::Data(batch) => {
                asm.push(&batch)?;
                let done = asm.take_done();
                if !done.is_empty() {
                    return Ok(Step::Traces(done));
                }
            }
            DecodeResult::Finished => return Ok(Step::Finished),
        }
    }
}
