//! A donating tab's [`Shelf`](crate::donor::Shelf): the Origin Private File System, from
//! the tab's worker, with synchronous access handles (measured several times faster than
//! IndexedDB for ciphertext; `../shared/notes` has the figures). One directory, `donated`;
//! per stripe `STRIPE.header` and `STRIPE.INDEX.shard`. The header is written before the
//! shard and only shards are listed, so a tab closed mid-write leaves at most a shard that
//! fails its check on the next read, and is then dropped.

use crate::donor::Shelf;
use js_sys::{AsyncIterator, Reflect};
use kura_core::StripeId;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions, FileSystemGetFileOptions,
    FileSystemReadWriteOptions, FileSystemSyncAccessHandle, WorkerGlobalScope,
};

/// The shards a donating tab keeps, in its origin's private file system.
#[derive(Debug, Clone)]
pub struct OpfsShelf {
    dir: FileSystemDirectoryHandle,
}

fn text(e: JsValue) -> String {
    e.as_string()
        .or_else(|| Reflect::get(&e, &"message".into()).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| format!("{e:?}"))
}

fn is_not_found(e: &JsValue) -> bool {
    Reflect::get(e, &"name".into()).ok().and_then(|n| n.as_string()).is_some_and(|n| n == "NotFoundError")
}

impl OpfsShelf {
    /// The `donated` directory of this origin's private file system (a worker only: sync
    /// access handles exist only there).
    pub async fn open() -> Result<Self, String> {
        let scope: WorkerGlobalScope =
            js_sys::global().dyn_into().map_err(|_| "donating runs in a Web Worker only".to_string())?;
        let root: FileSystemDirectoryHandle =
            JsFuture::from(scope.navigator().storage().get_directory()).await.map_err(text)?.unchecked_into();
        let opts = FileSystemGetDirectoryOptions::new();
        opts.set_create(true);
        let dir = JsFuture::from(root.get_directory_handle_with_options("donated", &opts))
            .await
            .map_err(text)?
            .unchecked_into();
        Ok(Self { dir })
    }

    async fn handle(&self, name: &str, create: bool) -> Result<Option<FileSystemSyncAccessHandle>, String> {
        let opts = FileSystemGetFileOptions::new();
        opts.set_create(create);
        let file: FileSystemFileHandle =
            match JsFuture::from(self.dir.get_file_handle_with_options(name, &opts)).await {
                Ok(f) => f.unchecked_into(),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(text(e)),
            };
        let h = JsFuture::from(file.create_sync_access_handle()).await.map_err(text)?;
        Ok(Some(h.unchecked_into()))
    }

    async fn write(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let h = self.handle(name, true).await?.ok_or("the file could not be made")?;
        let done = (|| {
            h.truncate_with_u32(0)?;
            let opts = FileSystemReadWriteOptions::new();
            opts.set_at(0.0);
            h.write_with_u8_array_and_options(bytes, &opts)?;
            h.flush()
        })();
        h.close();
        done.map_err(text)
    }

    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let Some(h) = self.handle(name, false).await? else { return Ok(None) };
        let done = (|| {
            let len = h.get_size()? as usize;
            let mut buf = vec![0u8; len];
            let opts = FileSystemReadWriteOptions::new();
            opts.set_at(0.0);
            let got = h.read_with_u8_array_and_options(&mut buf, &opts)? as usize;
            buf.truncate(got);
            Ok::<_, JsValue>(buf)
        })();
        h.close();
        done.map(Some).map_err(text)
    }

    /// Every name in the directory.
    async fn names(&self) -> Result<Vec<String>, String> {
        let it: AsyncIterator = self.dir.keys();
        let mut out = Vec::new();
        loop {
            let next = JsFuture::from(it.next().map_err(text)?).await.map_err(text)?;
            if Reflect::get(&next, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
                return Ok(out);
            }
            if let Some(name) = Reflect::get(&next, &"value".into()).ok().and_then(|v| v.as_string()) {
                out.push(name);
            }
        }
    }
}

impl Shelf for OpfsShelf {
    async fn list(&self) -> Result<Vec<(StripeId, u8, u64)>, String> {
        let mut out = Vec::new();
        for name in self.names().await? {
            let Some((stripe, index)) = name.strip_suffix(".shard").and_then(|b| b.split_once('.')) else {
                continue;
            };
            let (Some(stripe), Ok(index)) = (StripeId::from_hex(stripe), index.parse::<u8>()) else {
                continue;
            };
            let Some(h) = self.handle(&name, false).await? else { continue };
            let len = h.get_size().map_err(text);
            h.close();
            out.push((stripe, index, len? as u64));
        }
        Ok(out)
    }

    async fn put(&self, stripe: StripeId, index: u8, header: &[u8], shard: &[u8]) -> Result<(), String> {
        self.write(&format!("{stripe}.header"), header).await?;
        self.write(&format!("{stripe}.{index}.shard"), shard).await
    }

    async fn get(&self, stripe: &StripeId, index: u8) -> Result<Option<(Vec<u8>, Vec<u8>)>, String> {
        let Some(shard) = self.read(&format!("{stripe}.{index}.shard")).await? else { return Ok(None) };
        Ok(self.read(&format!("{stripe}.header")).await?.map(|header| (header, shard)))
    }

    async fn remove(&self, stripe: &StripeId, index: u8) -> Result<(), String> {
        match JsFuture::from(self.dir.remove_entry(&format!("{stripe}.{index}.shard"))).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(text(e)),
        }
        let _ = JsFuture::from(self.dir.remove_entry(&format!("{stripe}.header"))).await;
        Ok(())
    }
}
