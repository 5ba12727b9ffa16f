from chargeback_engine.cli import main

main()
