//! Runs the embedding story and prints what happened.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for line in canopy_embedding_example::run().await? {
        println!("{line}");
    }
    Ok(())
}
