//! CDI worker: import, upload and clone of disk images into volumes, refusing hostile images
