"""Generation: the clip loop with classifier-free guidance and MEMO's explicit memory state
(`pipeline.MemoPipeline`, `state.MemoState`), and the VAE protocol (`vae`)."""
