from mock_server.cli import main

main(prog_name="mock-llm-sse")
