//! The [`s3s::S3`] implementation served by [`crate::EmbeddedS3`]: `s3s_fs::FileSystem`
//! plus the fixes we need for real S3 clients.

use std::future::Future;
use std::pin::Pin;

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, CreateBucketInput,
    CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteBucketInput,
    DeleteBucketOutput, DeleteObjectInput, DeleteObjectOutput, DeleteObjectsInput,
    DeleteObjectsOutput, GetBucketLocationInput, GetBucketLocationOutput, GetObjectInput,
    GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput,
    ListBucketsInput, ListBucketsOutput, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, ListPartsInput, ListPartsOutput, PutObjectInput, PutObjectOutput,
    UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Request, S3Response, S3Result};
use s3s_fs::FileSystem;

/// The boxed future every [`S3`] method returns.
///
/// `s3s::S3` is declared with `#[async_trait]`; we implement it without the macro (to avoid an
/// extra dependency), so each method is written in the macro's expanded form:
/// `fn m<'life0, 'async_trait>(&'life0 self, ..) -> S3Future<'async_trait, _>
/// where 'life0: 'async_trait, Self: 'async_trait`.
type S3Future<'a, T> = Pin<Box<dyn Future<Output = S3Result<S3Response<T>>> + Send + 'a>>;

/// A directory-backed S3 store: `s3s_fs::FileSystem` with an empty `delimiter` treated as absent.
///
/// Every operation that `s3s-fs` 0.14.1 implements is delegated unchanged, except
/// `ListObjects`/`ListObjectsV2`: S3 treats `delimiter=` (empty) as "no delimiter", but s3s-fs
/// takes it literally and, since every string contains the empty string, reports the first
/// character of each key as a common prefix. minio-go (used by Grafana Tempo) always sends
/// `delimiter=`, so we rewrite `Some("")` to `None` here, after s3s has verified the SigV4
/// signature over the untouched query string.
#[derive(Debug)]
pub(crate) struct DirStore {
    fs: FileSystem,
}

impl DirStore {
    pub(crate) fn new(fs: FileSystem) -> Self {
        Self { fs }
    }
}

/// Treat an empty delimiter as no delimiter (the S3 semantics).
fn drop_empty_delimiter(delimiter: &mut Option<String>) {
    if delimiter.as_deref() == Some("") {
        tracing::trace!("ignoring empty list delimiter");
        *delimiter = None;
    }
}

/// Delegates the listed operations to `self.fs` unchanged.
macro_rules! delegate_to_fs {
    ($($method:ident($input:ty) -> $output:ty;)*) => {
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                req: S3Request<$input>,
            ) -> S3Future<'async_trait, $output>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                self.fs.$method(req)
            }
        )*
    };
}

impl S3 for DirStore {
    delegate_to_fs! {
        abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
        complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
        copy_object(CopyObjectInput) -> CopyObjectOutput;
        create_bucket(CreateBucketInput) -> CreateBucketOutput;
        create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
        delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
        delete_object(DeleteObjectInput) -> DeleteObjectOutput;
        delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
        get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
        get_object(GetObjectInput) -> GetObjectOutput;
        head_bucket(HeadBucketInput) -> HeadBucketOutput;
        head_object(HeadObjectInput) -> HeadObjectOutput;
        list_buckets(ListBucketsInput) -> ListBucketsOutput;
        list_parts(ListPartsInput) -> ListPartsOutput;
        put_object(PutObjectInput) -> PutObjectOutput;
        upload_part(UploadPartInput) -> UploadPartOutput;
        upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
    }

    fn list_objects<'life0, 'async_trait>(
        &'life0 self,
        mut req: S3Request<ListObjectsInput>,
    ) -> S3Future<'async_trait, ListObjectsOutput>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        drop_empty_delimiter(&mut req.input.delimiter);
        self.fs.list_objects(req)
    }

    fn list_objects_v2<'life0, 'async_trait>(
        &'life0 self,
        mut req: S3Request<ListObjectsV2Input>,
    ) -> S3Future<'async_trait, ListObjectsV2Output>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        drop_empty_delimiter(&mut req.input.delimiter);
        self.fs.list_objects_v2(req)
    }
}

#[cfg(test)]
mod tests {
    use super::drop_empty_delimiter;

    #[test]
    fn only_an_empty_delimiter_is_dropped() {
        let mut empty = Some(String::new());
        drop_empty_delimiter(&mut empty);
        assert_eq!(empty, None);

        let mut slash = Some("/".to_owned());
        drop_empty_delimiter(&mut slash);
        assert_eq!(slash.as_deref(), Some("/"));

        let mut absent = None;
        drop_empty_delimiter(&mut absent);
        assert_eq!(absent, None);
    }
}
