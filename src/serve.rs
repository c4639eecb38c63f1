pub async fn serve(
    _ctx: &crate::commands::Ctx,
    _args: crate::cli::ServeArgs,
) -> Result<(), crate::error::CliError> {
    todo!()
}
