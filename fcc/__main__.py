from fcc.launch import main

main()
